"""The daemon (``tppscan run``): logging, the control socket, systemd notification, one scan at a time."""
