"""The board's serial port as a :class:`eie.framing.BytePort` (pyserial)."""

from __future__ import annotations

__all__ = ["SerialPort", "open_link"]


class SerialPort:
    """A pyserial port with the ``write`` / ``read(timeout)`` of :class:`eie.framing.BytePort`."""

    def __init__(self, device: str, baud: int):
        try:
            import serial
        except ImportError:
            raise FileNotFoundError("pyserial is not installed; install it with `pip install pyserial`") from None
        try:
            self._serial = serial.Serial(device, baud, timeout=0, write_timeout=10)
        except (serial.SerialException, OSError) as e:
            raise FileNotFoundError(f"cannot open serial port {device}: {e}; check --port (the iCEBreaker's "
                                    f"UART is usually the second FTDI interface, /dev/ttyUSB1) and that you "
                                    f"may use it (group dialout)") from None
        self.device = device
        self.baud = baud

    def write(self, data: bytes) -> None:
        self._serial.write(data)
        self._serial.flush()

    def read(self, timeout: float) -> bytes:
        s = self._serial
        s.timeout = max(0.0, timeout)
        first = s.read(1)
        if not first:
            return b""
        s.timeout = 0
        return first + s.read(s.in_waiting or 0)

    def close(self) -> None:
        self._serial.close()


def open_link(device: str, baud: int, *, log=None, timeout: float = 2.0):
    """A started :class:`eie.framing.FramedLink` on ``device`` and its port."""
    from ..framing import FramedLink
    port = SerialPort(device, baud)
    try:
        link = FramedLink(port, log=log, ack_timeout=timeout, response_timeout=timeout)
        link.open()
    except BaseException:
        port.close()
        raise
    return link, port
