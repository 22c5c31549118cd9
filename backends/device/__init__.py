"""The analog device backend: AMVM/1 protocol, transports, driver interface, emulator.

``device:serial:/dev/pts/7``, ``device:tcp:127.0.0.1:5025``, ``device:replay:traffic.hilrec`` or
``device:NAME:ADDRESS`` for a driver from the ``hil.drivers`` entry-point group. See
docs/protocol.md for the wire protocol and `DeviceBackend` for how layers map onto tiles.
"""

from hil.backends.device.driver import AmvmDriver, DeviceStatus, Driver
from hil.backends.device.plugins import register_driver
from hil.backends.device.protocol import Capabilities, RunReply
from hil.backends.device.transport import DeviceError

__all__ = ["AmvmDriver", "Capabilities", "DeviceError", "DeviceStatus", "Driver", "RunReply", "register_driver"]
