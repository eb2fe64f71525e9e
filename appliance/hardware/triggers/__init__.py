"""What starts, pauses and stops a scan: a GPIO button, the stage board's button, a serial console.

Each trigger turns its device's input into :class:`~appliance.hardware.triggers.events.TriggerEvent` and hands
it to one handler (the service), which answers with a reply line. The local control socket, the fourth way in,
lives with the service (``appliance.service.control``).
"""
