"""Model services. ``services.adult`` is the BentoML service for the Adult income champion and challenger."""
