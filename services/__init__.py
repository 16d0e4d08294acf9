"""Model services. ``services.tabular`` is the one BentoML service of every tabular system, driven by the
system's serving spec (``artifacts/<system>/serving/serving.json``); ``services.serve`` runs it locally."""
