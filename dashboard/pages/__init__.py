"""Extra pages of the dashboard, each shown on its own path (see ``dashboard.workflow``)."""
