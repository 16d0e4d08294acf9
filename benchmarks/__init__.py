"""Performance harness behind ``make bench``: each suite writes a Markdown table and JSON to results/."""
