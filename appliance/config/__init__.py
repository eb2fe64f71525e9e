"""The appliance configuration: ``schema`` (the typed YAML file) and ``cli`` (``tppscan config``)."""
