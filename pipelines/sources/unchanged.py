"""Pictures the encoder coded as unchanged, handed on without decoding them: exact, and only where provably so.

An H.264 P picture whose every macroblock is P_Skip is a copy of its reference picture to the bit
(``pipelines/sources/h264bits.py``); on a still scene an encoder may send many (tens of bytes each at 720p).
``FrameDecoder`` hands such a packet on as the previous picture with the packet's own timestamp, without sending
it to the decoder (decoding one costs about 0.4 ms of CPU at 720p on one thread; reading its slices here about
0.03 ms). When the next packet is decoded, FFmpeg's H.264 decoder sees a gap in ``frame_num`` and fills it with
references to its newest reference picture -- what the skipped pictures were -- so every later picture decodes
as if nothing had been left out. Every condition that argument needs is checked, per packet:

- software H.264 decoding of a stream without B pictures (the decoder states no reordering delay, and a B slice
  seen turns skipping off for the stream); NVDEC and every other codec decode every packet;
- one reference frame (``max_num_ref_frames`` 1): FFmpeg's gap filling makes its pictures share the buffer of
  the picture they copy, and its deblocking filter tells references apart by buffer, so a later picture that
  refers to two of them would be filtered differently (measured: differences of up to 5 levels with three);
- the picture left out: a reference P picture whose slices cover the frame, every macroblock P_Skip, refIdx 0 of
  list 0 the previous reference frame, unweighted, no marking of its own, the next ``frame_num``, a later
  timestamp, and nothing else in its packet but access unit delimiters, filler and SEI messages that carry no
  picture property (buffering period, picture timing, user data); gaps in ``frame_num`` not allowed by the
  stream, progressive frames;
- the picture before it (decoded or left out): a short-term reference picture (the decoder's newest reference,
  the one its gap filling copies), and a picture has been handed on (a stream joined between key frames has
  none until the decoder recovers);
- the run of pictures left out: within one ``frame_num`` cycle (FFmpeg's gap filling does not carry the picture
  order count across a wrap of ``frame_num``; the run then ends at the wrap) and short of the last decoded
  ``frame_num`` coming round again. When the packet that ends a run would still get another picture order count
  than with every packet decoded (POC type 0: a ``pic_order_cnt_lsb`` distance FFmpeg would read wrongly), the
  packets of the run are decoded after all before it, and their pictures, handed on already, dropped.

Pictures leave in decode order, each copy right after the picture it repeats (``packet.opaque`` tells which packet
a decoded frame came from, through frame threading's delay). At the end of the stream the run needs no decoding.
``FrameDecoder.undecoded`` counts the packets left out.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

import av.error

from pipelines.sources.h264bits import (Bits, Pps, Slice, Sps, Unsupported, cabac_skip_run, parse_pps, parse_slice,
                                        parse_sps, skip_path_bits, unescape)

_SAFE_SEI = frozenset({0, 1, 4, 5})  # buffering period, picture timing, user data (registered, unregistered)
_VERIFIED_KEPT = 512   # CABAC skip runs remembered (per stream)


class Picture(NamedTuple):
    """A picture to hand on: the decoded frame (an ``av.VideoFrame``, possibly the same one again) and its
    timestamp in the stream's time base (None when unknown)."""

    frame: Any
    pts: Optional[int]


def nal_units(data: bytes, length_size: int) -> list[tuple[int, int]]:
    """(start, end) of each NAL unit of a packet: length-prefixed (MP4's ``avcC``, ``length_size`` bytes) or, with
    0, Annex B (start codes; the zero bytes before a start code are left out)."""
    out = []
    if length_size:
        i = 0
        while i + length_size <= len(data):
            n = int.from_bytes(data[i:i + length_size], "big")
            i += length_size
            if n:
                out.append((i, min(i + n, len(data))))
            i += n
        return out
    start = data.find(b"\x00\x00\x01")
    while start >= 0:
        begin = start + 3
        start = data.find(b"\x00\x00\x01", begin)
        end = len(data) if start < 0 else start
        while end > begin and data[end - 1] == 0:
            end -= 1
        if end > begin:
            out.append((begin, end))
    return out


def _sei_safe(rbsp: bytes) -> bool:
    """Whether an SEI NAL unit holds only messages of ``_SAFE_SEI`` types."""
    i, end = 1, len(rbsp)
    while i < end and rbsp[i:] != b"\x80":
        kind = size = 0
        while i < end and rbsp[i] == 0xFF:
            kind, i = kind + 255, i + 1
        if i >= end:
            return False
        kind, i = kind + rbsp[i], i + 1
        while i < end and rbsp[i] == 0xFF:
            size, i = size + 255, i + 1
        if i >= end:
            return False
        size, i = size + rbsp[i], i + 1
        if kind not in _SAFE_SEI:
            return False
        i += size
    return True


@dataclass
class ParameterSets:
    """The stream's sequence and picture parameter sets, from its extradata and in band."""

    sps: dict[int, Sps] = field(default_factory=dict)
    pps: dict[int, Pps] = field(default_factory=dict)
    length_size: int = 0   # NAL length prefix of MP4 (avcC); 0: Annex B (MPEG-TS, RTSP)

    @classmethod
    def of(cls, extradata: Optional[bytes]) -> "ParameterSets":
        sets = cls()
        if extradata and extradata[0] == 1 and len(extradata) > 6:   # avcC
            sets.length_size = (extradata[4] & 3) + 1
            i = 5
            for mask in (0x1F, 0xFF):
                count, i = extradata[i] & mask, i + 1
                for _ in range(count):
                    n = int.from_bytes(extradata[i:i + 2], "big")
                    sets.see(extradata[i + 2:i + 2 + n])
                    i += 2 + n
        elif extradata:
            for begin, end in nal_units(extradata, 0):
                sets.see(extradata[begin:end])
        return sets

    def see(self, nal: bytes) -> None:
        """Take in a parameter set NAL unit (others are ignored); one that cannot be read is forgotten."""
        kind = nal[0] & 0x1F if nal else 0
        try:
            if kind == 7:
                key, sps = parse_sps(unescape(nal))
                self.sps[key] = sps
            elif kind == 8:
                key, pps = parse_pps(unescape(nal))
                self.pps[key] = pps
        except (Unsupported, IndexError):
            if kind == 7:
                self.sps.clear()
            elif kind == 8:
                self.pps.clear()


class _Unit(NamedTuple):
    """What one packet holds: its first slice's header (None: none, or unreadable), its SPS, and whether it is
    a picture every macroblock of which is P_Skip that ``FrameDecoder`` may leave undecoded."""

    head: Optional[Slice]
    sps: Optional[Sps]
    all_skip: bool


@functools.lru_cache(maxsize=256)
def _path_bits(init: int, qp: int, count: int) -> int:
    return skip_path_bits(init, qp, count)


class _Reader:
    """Reads one stream's packets (``ParameterSets`` kept up to date) into ``_Unit``."""

    def __init__(self, extradata: Optional[bytes]) -> None:
        self.sets = ParameterSets.of(extradata)
        self._verified: OrderedDict[tuple[int, int, int, int], bool] = OrderedDict()

    def read(self, data: bytes, small: bool) -> _Unit:
        """``small``: the packet is small enough to be an all-skip picture (only then is every slice read)."""
        slices: list[bytes] = []
        other = False
        for begin, end in nal_units(data, self.sets.length_size):
            kind = data[begin] & 0x1F
            if kind in (1, 5):
                if small or not slices:   # a large packet: the first slice's header is all that is needed
                    slices.append(bytes(data[begin:end if small else min(end, begin + 512)]))
            elif kind in (7, 8):
                self.sets.see(bytes(data[begin:end]))
                other = True
            elif kind == 6:
                other = other or not small or not _sei_safe(unescape(bytes(data[begin:end])))
            elif kind not in (9, 12):
                other = True
        if not slices or not any(s.max_refs == 1 and not s.gaps_allowed for s in self.sets.sps.values()):
            return _Unit(None, None, False)   # nothing this stream sends can be left out: no slice need be read
        try:
            parsed = [parse_slice(unescape(nal), self.sets.sps, self.sets.pps) for nal in slices]
        except (Unsupported, IndexError):
            return _Unit(None, None, False)
        head, _, sps, _ = parsed[0]
        return _Unit(head, sps, small and not other and self._all_skip(parsed))

    def _all_skip(self, parsed: list[tuple[Slice, Bits, Sps, Pps]]) -> bool:
        parsed = sorted(parsed, key=lambda s: s[0].first_mb)
        head, sps = parsed[0][0], parsed[0][2]
        if sps.gaps_allowed or sps.max_refs != 1:
            return False
        covered = 0
        for k, (info, bits, slice_sps, pps) in enumerate(parsed):
            if (info.nal_type != 1 or info.slice_type != 0 or not info.ref_idc or info.ref0_not_previous
                    or info.ref0_weighted or info.mmco or info.first_mb != covered or slice_sps is not sps
                    or (info.frame_num, info.pps_id) != (head.frame_num, head.pps_id)):
                return False
            end = parsed[k + 1][0].first_mb if k + 1 < len(parsed) else sps.mbs
            count = end - covered
            if count <= 0:
                return False
            if not (self._cabac(info, bits, count) if pps.cabac else bits.ue() == count
                    and bits.stop_bit() == bits.pos):   # CAVLC: one mb_skip_run, then the stop bit
                return False
            covered = end
        return covered == sps.mbs

    def _cabac(self, info: Slice, bits: Bits, count: int) -> bool:
        need = _path_bits(info.cabac_init, info.qp, count)
        start = info.data_pos
        if bits.size < start + need or bits.stop_bit() > start + need + 64:   # too short, or more coded after
            return False
        prefix = (bits.value >> (bits.size - start - need)) & ((1 << need) - 1)
        key = (info.cabac_init, max(0, min(51, info.qp)), count, prefix)
        known = self._verified.get(key)
        if known is None:
            data = bits.value.to_bytes(bits.size // 8, "big")
            known = self._verified[key] = cabac_skip_run(data, start, info.cabac_init, info.qp, count)
            if len(self._verified) > _VERIFIED_KEPT:
                self._verified.popitem(last=False)
        return known


def _poc_msb(prev_lsb: int, prev_msb: int, lsb: int, size: int) -> int:
    """PicOrderCntMsb of a picture (8.2.1.1), as FFmpeg's decoder infers it."""
    if lsb < prev_lsb and prev_lsb - lsb >= size // 2:
        return prev_msb + size
    if lsb > prev_lsb and lsb - prev_lsb > size // 2:
        return prev_msb - size
    return prev_msb


def _ends_run_exactly(last: _Unit, run: list[_Unit], nxt: _Unit) -> bool:
    """Whether FFmpeg, having decoded ``last`` and then ``nxt`` with the pictures of ``run`` between them left out,
    gives ``nxt`` the picture order count it gets when every picture is decoded (see module docstring)."""
    head, sps, before = nxt.head, nxt.sps, last.head
    if head is None or sps is None or before is None or last.sps != sps:
        return head is not None and head.nal_type == 5   # an IDR picture starts afresh
    if head.nal_type == 5:
        return True
    chain = [before] + [u.head for u in run if u.head is not None] + [head]
    if sps.poc_type == 0:
        size = 1 << sps.log2_max_poc_lsb
        lsb, msb = before.poc_lsb, 0
        for pic in chain[1:]:
            msb = _poc_msb(lsb, msb, pic.poc_lsb, size)
            lsb = pic.poc_lsb
        return msb == _poc_msb(before.poc_lsb, 0, head.poc_lsb, size)   # FFmpeg: from ``last`` directly
    wraps = sum(b.frame_num < a.frame_num for a, b in zip(chain, chain[1:]))
    size = 1 << sps.log2_max_frame_num
    filled = before.frame_num if head.frame_num in (before.frame_num, (before.frame_num + 1) % size) \
        else (head.frame_num - 1) % size   # frame_num FFmpeg's gap filling leaves as the previous one
    return wraps == int(head.frame_num < filled)


def _short_term_reference(head: Optional[Slice]) -> bool:
    """Whether the picture stays the decoder's newest short-term reference frame after it is decoded."""
    return (head is not None and head.ref_idc != 0 and head.slice_type in (0, 2) and not head.mmco
            and not head.long_term)


class FrameDecoder:
    """Decodes one stream's packets into ``Picture``s in order; with software H.264 decoding, a packet proven to
    hold an unchanged picture is not decoded: its picture is the previous one again (module docstring).

    Attributes:
        undecoded: packets handed on as the previous picture without being decoded.
    """

    def __init__(self, stream: Any, decoder: Any, skip: bool = True) -> None:
        """``stream``: the ``av.VideoStream`` demuxed; ``decoder``: its ``DecoderChoice`` (``hwdecode``);
        ``skip``: leave unchanged pictures undecoded where this can (False: decode every packet)."""
        self._decoder, self._context = decoder, stream.codec_context
        self.undecoded = 0
        self.replayed = 0   # packets withheld, then decoded after all (their pictures dropped)
        applies = skip and not decoder.hardware and self._context.name == "h264"
        self._reader = _Reader(self._context.extradata) if applies else None
        if applies:
            self._context.copy_opaque = True   # frames name the packet they came from (``_take``)
        self._sent = 0                 # number of the next packet sent to the decoder
        self._copies: dict[int, list[int]] = {}   # packet number -> timestamps of the copies of its picture
        self._dropped: set[int] = set()   # withheld packets decoded after all: their pictures went out as copies
        self._shown: Any = None        # the last picture handed on, and its packet's number
        self._shown_at = -1
        self._last: Optional[_Unit] = None   # the last packet decoded
        self._previous: Optional[_Unit] = None   # the last packet, decoded or withheld
        self._pts: Optional[int] = None
        self._run: list[tuple[Any, _Unit]] = []   # packets withheld since ``_last``
        self._reordered = False        # a B slice was seen: pictures may be reordered, skip nothing
        self._out: list[Picture] = []  # pictures ready: kept for the next call when decoding a packet fails

    def decode(self, packet: Any) -> list[Picture]:
        """The pictures ``packet`` completes, in order (a flush packet, size 0: every picture still held). Raises
        what the decoder raises for a damaged packet; the pictures completed meanwhile come with the next call."""
        if self._reader is None:
            return [Picture(frame, frame.pts) for frame in self._decoder.decode(packet)]
        self._handle(packet, self._out)
        out, self._out = self._out, []
        return out

    def _handle(self, packet: Any, out: list[Picture]) -> None:
        assert self._reader is not None
        if not packet.size:   # the end: no later picture needs the withheld packets
            self._run.clear()
            self._last = self._previous = None
            self._take(self._decoder.decode(packet), out)
            self._release(None, out)
            return
        if self._reordered or self._context.has_b_frames:   # never again: decode, in order with earlier copies
            self._reordered = True
            self._send(packet, None, out)
            return
        sets = self._reader.sets
        small = packet.size <= 128 + max((s.mbs for s in sets.sps.values()), default=4096) // 16
        data = bytes(packet) if small or not sets.length_size else memoryview(packet)
        unit = self._reader.read(data, small)   # type: ignore[arg-type]
        self._reordered = self._reordered or (unit.head is not None and unit.head.slice_type == 1)
        if self._may_skip(unit, packet.pts):
            self._withhold(packet, unit, out)
            return
        if self._run:
            self._end_run(unit, out)
        self._send(packet, unit, out)

    def _may_skip(self, unit: _Unit, pts: Optional[int]) -> bool:
        previous, head, sps = self._previous, unit.head, unit.sps
        if (not unit.all_skip or self._reordered or previous is None or self._last is None or head is None
                or self._shown is None   # nothing decoded yet (a stream joined between key frames): no copy
                or sps is None or previous.sps != sps or pts is None or self._context.has_b_frames):
            return False
        before, last = previous.head, self._last.head
        size = 1 << sps.log2_max_frame_num
        return (_short_term_reference(before) and before is not None and last is not None
                and head.frame_num == (before.frame_num + 1) % size   # the next reference frame, nothing lost
                and head.frame_num > last.frame_num   # a run never spans a frame_num wrap: FFmpeg would miss it
                and len(self._run) + 2 < size   # nor so long that the next frame_num is the last decoded one's
                and (self._pts is None or pts > self._pts)
                and _ends_run_exactly(self._last, [u for _, u in self._run], unit))   # POC type 0

    def _withhold(self, packet: Any, unit: _Unit, out: list[Picture]) -> None:
        self._run.append((packet, unit))
        self._previous, self._pts = unit, packet.pts
        self.undecoded += 1
        last = self._sent - 1
        if self._shown_at == last:   # the picture it repeats went out already (and every copy before it)
            out.append(Picture(self._shown, packet.pts))
        else:
            self._copies.setdefault(last, []).append(packet.pts)

    def _end_run(self, unit: _Unit, out: list[Picture]) -> None:
        run, self._run = self._run, []
        if self._last is not None and _ends_run_exactly(self._last, [u for _, u in run], unit):
            return
        for packet, _ in run:   # decoded after all, before ``unit``: the decoder's state is as if never withheld
            self.undecoded -= 1
            self.replayed += 1
            self._dropped.add(self._sent)
            try:
                self._send(packet, None, out)
            except av.error.FFmpegError:   # its picture went out already (a copy); the next one is decoded
                pass

    def _send(self, packet: Any, unit: Optional[_Unit], out: list[Picture]) -> None:
        packet.opaque = self._sent
        self._sent += 1
        if unit is not None:
            self._last = self._previous = unit
            self._pts = packet.pts
        try:
            frames = self._decoder.decode(packet)
        except Exception:
            self._last = self._previous = None   # nothing is skipped after a packet the decoder refused
            raise
        self._take(frames, out)

    def _take(self, frames: list[Any], out: list[Picture]) -> None:
        for frame in frames:
            number = frame.opaque
            if number in self._dropped:
                self._dropped.discard(number)
                continue
            if isinstance(number, int):
                self._release(number, out)
            out.append(Picture(frame, frame.pts))
            self._shown = frame
            if isinstance(number, int):
                self._shown_at = number
                out.extend(Picture(frame, pts) for pts in self._copies.pop(number, ()))

    def _release(self, before: Optional[int], out: list[Picture]) -> None:
        """Hand on the copies waiting for pictures of packets before ``before`` (None: all) that never came
        (a packet the decoder gave no picture for), as copies of the last picture handed on."""
        for number in sorted(k for k in self._copies if before is None or k < before):
            pts_list = self._copies.pop(number)
            if self._shown is not None:
                out.extend(Picture(self._shown, pts) for pts in pts_list)
