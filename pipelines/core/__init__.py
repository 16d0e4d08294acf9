"""Shared pieces of the stages: typed params, safe file writes, the data contract, template rendering."""
