"""UI pieces shared by the pages: page setup, cached loaders, widgets, figures."""
