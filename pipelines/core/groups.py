"""How a group of an intersection of sensitive attributes is named: its values joined by :data:`JOIN`
("Female / Black"). One module, imported by the evaluation (``fairness``) and by monitoring (``window``), so both
name a group alike; it imports nothing, so counting a window does not load pandas or scikit-learn."""

JOIN = " / "
