"""Controls, one module per area; each module declares ``AREA`` and ``CONTROLS``."""
