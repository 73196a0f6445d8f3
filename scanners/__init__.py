"""Fleet scanner: controls mapped to the Provisions, evaluated from facts gathered per host."""
