"""Monitoring as code for the Genesis progressive rollout."""
