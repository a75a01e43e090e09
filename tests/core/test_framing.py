"""Host side of the UART framing (eie/framing.py)."""

import binascii
import struct

import pytest

from eie.framing import (AckCode, BadFrame, FrameDecoder, FramedLink, FrameType, FramingError, HostFraming,
                         NakReason, encode_frame, frame_bytes)


def test_frame_layout_by_hand():
    data = encode_frame(FrameType.DATA, 7, [0x04030201, 0xDEADBEEF])
    body = bytes([0x01, 7, 2, 1, 2, 3, 4, 0xEF, 0xBE, 0xAD, 0xDE])
    assert data == bytes([0xA5]) + body + struct.pack("<I", binascii.crc32(body))
    assert len(data) == frame_bytes(2)


def test_encode_rejects_bad_fields():
    with pytest.raises(ValueError, match="exceeds the maximum"):
        encode_frame(FrameType.DATA, 0, [0] * 129)
    with pytest.raises(ValueError, match="sequence"):
        encode_frame(FrameType.DATA, 256, [])
    with pytest.raises(ValueError, match="32 bits"):
        encode_frame(FrameType.DATA, 0, [1 << 32])


def test_decoder_roundtrip_split_anywhere_and_garbage():
    frames = [encode_frame(FrameType.RESP, i, list(range(i))) for i in range(5)]
    stream = b"\x00\x11" + b"".join(frames)
    for cut in (1, 3, 7, len(stream) - 1):
        dec = FrameDecoder()
        got = dec.feed(stream[:cut]) + dec.feed(stream[cut:])
        assert [(f.type, f.seq, f.words) for f in got] == [(FrameType.RESP, i, tuple(range(i))) for i in range(5)]
        assert dec.skipped == 2


def test_decoder_detects_corruption_and_truncation():
    good = encode_frame(FrameType.RESP, 1, [5, 6])
    for i in range(1, len(good)):
        bad = bytearray(good)
        bad[i] ^= 0x08
        dec = FrameDecoder(max_words=8)
        out = dec.feed(bytes(bad))
        if out:
            assert len(out) == 1 and isinstance(out[0], BadFrame)
        else:
            with pytest.raises(FramingError):   # a corrupted length byte makes the frame look longer
                dec.check_idle()
    # decoding goes on after a bad frame
    bad = bytearray(good)
    bad[5] ^= 1
    out = FrameDecoder().feed(bytes(bad) + good)
    assert isinstance(out[0], BadFrame) and out[1].words == (5, 6)
    dec = FrameDecoder()
    dec.feed(good[:-2])
    with pytest.raises(FramingError, match="truncated"):
        dec.check_idle()


def test_host_framing_sequences():
    fr = HostFraming(max_words=3)
    assert fr.sync_frame() == encode_frame(FrameType.SYNC, 0, [])
    frames = fr.data_frames(list(range(7)))
    assert [seq for seq, _ in frames] == [1, 2, 3]
    assert frames[2][1] == encode_frame(FrameType.DATA, 3, [6], max_words=3)
    events = fr.receive(encode_frame(FrameType.ACK, 0, [0]) + encode_frame(FrameType.RESP, 0, [1])
                        + encode_frame(FrameType.ACK, 1, [0]) + encode_frame(FrameType.RESP, 1, [2, 3]))
    assert [(e.type, e.seq) for e in events] == [(FrameType.ACK, 0), (FrameType.ACK, 1)]
    assert fr.take_words() == [1, 2, 3]
    with pytest.raises(FramingError, match="lost"):
        fr.receive(encode_frame(FrameType.RESP, 3, [9]))
    with pytest.raises(FramingError, match="corrupted"):
        fr.receive(encode_frame(FrameType.RESP, 3, [9])[:-1] + b"\x00")


def test_host_framing_ignores_stale_frames_until_sync_ack():
    fr = HostFraming()
    fr.sync_frame()
    stale = encode_frame(FrameType.RESP, 9, [1, 2])
    events = fr.receive(stale[5:] + stale[:-1] + b"\x00" + stale + encode_frame(FrameType.ACK, 0, [0])
                        + encode_frame(FrameType.RESP, 0, [3]))
    assert [(e.type, e.seq) for e in events] == [(FrameType.ACK, 0)]
    assert fr.take_words() == [3]


class ModelBoard:
    """A Python model of the board's frame bridge with an echo core and fault injection."""

    def __init__(self, corrupt_data_frames=(), drop_acks=()):
        self.dec = FrameDecoder(max_words=255)
        self.out = bytearray()
        self.executed = []
        self.last_seq = None
        self.resp_seq = 0
        self.n_data = 0
        self.corrupt = set(corrupt_data_frames)
        self.drop_acks = set(drop_acks)

    def write(self, data):
        if data[1] == FrameType.DATA:
            self.n_data += 1
            if self.n_data in self.corrupt:
                data = bytearray(data)
                data[-1] ^= 0xFF
                data = bytes(data)
        for f in self.dec.feed(data):
            if isinstance(f, BadFrame):
                self.out += encode_frame(FrameType.NAK, data[2], [NakReason.CRC])
                continue
            if f.type == FrameType.SYNC:
                self.last_seq, self.resp_seq = None, 0
                self.out += encode_frame(FrameType.ACK, 0, [AckCode.ACCEPTED])
            elif f.seq == self.last_seq:
                self.out += encode_frame(FrameType.ACK, f.seq, [AckCode.DUPLICATE])
            else:
                self.executed += f.words
                self.last_seq = f.seq
                if self.n_data not in self.drop_acks:
                    self.out += encode_frame(FrameType.ACK, f.seq, [AckCode.ACCEPTED])
                if f.words:
                    self.out += encode_frame(FrameType.RESP, self.resp_seq, f.words)
                    self.resp_seq = (self.resp_seq + 1) & 0xFF

    def read(self, timeout):
        data, self.out = bytes(self.out), bytearray()
        if not data:
            clock.now += timeout
        return data


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


clock = Clock()


def test_framed_link_retransmits_without_duplicating():
    board = ModelBoard(corrupt_data_frames={2}, drop_acks={4})
    link = FramedLink(board, max_words=4, clock=clock, ack_timeout=1.0, response_timeout=0.5)
    link.open()
    words = list(range(100, 114))
    assert link.transact(words, len(words)) == words
    assert board.executed == words                     # each word executed exactly once
    assert link.stats.naks == {"CRC": 1}
    assert link.stats.duplicates == 1                  # the frame whose ACK was lost
    assert link.stats.retransmissions == 2


def test_framed_link_gives_up_and_reports():
    board = ModelBoard(corrupt_data_frames=set(range(1, 10)))
    link = FramedLink(board, max_words=4, clock=clock, retries=2)
    link.open()
    with pytest.raises(FramingError, match="after 3 attempts"):
        link.transact([1, 2], 2)
    assert board.executed == []


def test_framed_link_returns_short_answers_after_quiet_line():
    board = ModelBoard()
    link = FramedLink(board, clock=clock, response_timeout=0.5)
    link.open()
    assert link.transact([1, 2], 5) == [1, 2]          # fewer words than asked for: the runtime asks again
