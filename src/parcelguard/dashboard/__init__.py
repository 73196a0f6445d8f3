"""The auditors' dashboard of ``parcelguard serve``: Flask pages over the scan store."""
