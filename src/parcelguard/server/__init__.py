"""``parcelguard serve``: SCIM 2.0 and a signed webhook that start offboarding jobs, and
the worker that runs them."""
