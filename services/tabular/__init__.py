"""The BentoML service: input schema from the data contract, champion/challenger routing, health, metrics, log.

Modules: ``spec`` (the packaged serving.json), ``schema`` (request and response models), ``routing`` (canary,
shadow, sticky keys), ``predlog`` (the rotating prediction log), ``service`` (the BentoML service class).
"""
