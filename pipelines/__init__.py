"""DVC stages: one module per stage (ingest, validate, split, profile, ...), each with a small ``main()``."""
