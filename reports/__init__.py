"""Audit reports rendered from the scan model."""
