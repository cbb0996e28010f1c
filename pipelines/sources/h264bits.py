"""Just enough of the H.264 bitstream (ITU-T H.264) to tell that a coded picture is a copy of the previous one.

A P slice whose every macroblock is P_Skip copies its reference picture exactly: a skipped macroblock's motion
vector is predicted from its left and upper neighbours, and is zero when either lies outside the slice (the first
one) or is itself skipped with a zero vector (every other one, by induction); no residual is coded and no edge is
filtered (the deblocking strength between two skipped macroblocks with the same reference and vector is 0). So an
all-skip picture is refIdx 0 of list 0 to the bit -- when nothing rearranges that list, weights it or marks pictures
(``Slice`` records each of those, and ``pipelines/sources/unchanged.py`` refuses them).

Read here: the sequence and picture parameter sets (the fields a slice header needs), the slice header up to its
data, and whether the slice data codes nothing but skipped macroblocks: with CAVLC one ``mb_skip_run`` covering the
slice and nothing after it; with CABAC the ``mb_skip_flag`` / ``end_of_slice_flag`` pairs, decoded with the
standard's arithmetic decoder (only context 11 is ever used on that path: no neighbour of a skipped run is coded).
Anything this does not follow (interlaced pictures, slice groups, redundant pictures, separate colour planes, SP/SI
slices) raises ``Unsupported``: the packet is decoded as before.
"""

from __future__ import annotations

from dataclasses import dataclass


class Unsupported(Exception):
    """The bitstream uses something this reader does not follow, or is cut short: decode the packet."""


class Bits:
    """A big-endian bit reader over an RBSP (emulation prevention bytes removed: ``unescape``)."""

    __slots__ = ("value", "size", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.value = int.from_bytes(data, "big")
        self.size = len(data) * 8
        self.pos = pos

    def u(self, count: int) -> int:
        """The next ``count`` bits as an unsigned number."""
        end = self.pos + count
        if end > self.size:
            raise Unsupported("the unit ends early")
        self.pos = end
        return (self.value >> (self.size - end)) & ((1 << count) - 1)

    def ue(self) -> int:
        """An unsigned Exp-Golomb number."""
        rest = self.size - self.pos
        zeros = rest - (self.value & ((1 << rest) - 1)).bit_length()
        if zeros >= rest or zeros > 31:
            raise Unsupported("a number runs past the unit")
        self.pos += zeros
        return self.u(zeros + 1) - 1

    def se(self) -> int:
        """A signed Exp-Golomb number."""
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)

    def stop_bit(self) -> int:
        """Position of the last 1 bit (the ``rbsp_stop_one_bit``); -1 when there is none."""
        if not self.value:
            return -1
        return self.size - (self.value & -self.value).bit_length()


def unescape(nal: bytes) -> bytes:
    """The RBSP of a NAL unit: its emulation prevention bytes (0x03 after two zero bytes) removed."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00") if b"\x00\x00\x03" in nal else nal


@dataclass(frozen=True)
class Sps:
    """The fields of a sequence parameter set that a P slice header and the decoder's frame_num and POC
    bookkeeping depend on; ``mbs`` is PicSizeInMbs."""

    log2_max_frame_num: int
    poc_type: int
    log2_max_poc_lsb: int
    delta_pic_order_always_zero: bool
    gaps_allowed: bool
    max_refs: int   # max_num_ref_frames
    mbs: int
    frame_mbs_only: bool
    chroma: bool   # ChromaArrayType != 0 (weights for chroma are coded)


@dataclass(frozen=True)
class Pps:
    """The fields of a picture parameter set that a slice header depends on."""

    sps_id: int
    cabac: bool
    bottom_field_pic_order: bool
    slice_groups: int
    num_ref_l0: int
    weighted_pred: bool
    weighted_bipred_idc: int
    pic_init_qp: int
    deblocking_control: bool
    redundant_pic_cnt: bool


_HIGH_PROFILES = (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135)


def _skip_scaling_list(bits: Bits, size: int) -> None:
    last = following = 8
    for _ in range(size):
        if following:
            following = (last + bits.se() + 256) % 256
        last = following or last


def parse_sps(rbsp: bytes) -> tuple[int, Sps]:
    """(seq_parameter_set_id, ``Sps``) of a sequence parameter set NAL unit's RBSP (header byte included)."""
    bits = Bits(rbsp, 8)
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level
    sps_id = bits.ue()
    chroma_format = 1
    if profile in _HIGH_PROFILES:
        chroma_format = bits.ue()
        if chroma_format == 3 and bits.u(1):
            raise Unsupported("separate colour planes")
        bits.ue()
        bits.ue()  # bit depths
        bits.u(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.u(1):
            for i in range(8 if chroma_format != 3 else 12):
                if bits.u(1):
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    log2_frame_num = bits.ue() + 4
    poc_type = bits.ue()
    log2_poc_lsb = 0
    always_zero = False
    if poc_type == 0:
        log2_poc_lsb = bits.ue() + 4
    elif poc_type == 1:
        always_zero = bool(bits.u(1))
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    max_refs = bits.ue()
    gaps = bool(bits.u(1))
    width, height = bits.ue() + 1, bits.ue() + 1
    frame_only = bool(bits.u(1))
    return sps_id, Sps(log2_frame_num, poc_type, log2_poc_lsb, always_zero, gaps, max_refs,
                       width * height * (1 if frame_only else 2), frame_only, chroma_format != 0)


def parse_pps(rbsp: bytes) -> tuple[int, Pps]:
    """(pic_parameter_set_id, ``Pps``) of a picture parameter set NAL unit's RBSP (header byte included)."""
    bits = Bits(rbsp, 8)
    pps_id, sps_id = bits.ue(), bits.ue()
    cabac, bottom = bool(bits.u(1)), bool(bits.u(1))
    groups = bits.ue() + 1
    if groups > 1:  # slice group maps follow: never read further (such slices are refused)
        return pps_id, Pps(sps_id, cabac, bottom, groups, 0, False, 0, 0, False, False)
    num_ref_l0 = bits.ue() + 1
    bits.ue()
    weighted, bipred = bool(bits.u(1)), bits.u(2)
    qp = 26 + bits.se()
    bits.se()
    bits.se()
    deblocking = bool(bits.u(1))
    bits.u(1)  # constrained_intra_pred_flag
    redundant = bool(bits.u(1))
    return pps_id, Pps(sps_id, cabac, bottom, groups, num_ref_l0, weighted, bipred, qp, deblocking, redundant)


@dataclass(frozen=True)
class Slice:
    """A slice header.

    Attributes:
        nal_type: 1 (non-IDR) or 5 (IDR); ``ref_idc``: nal_ref_idc (0: the picture is not a reference).
        slice_type: 0 P, 1 B, 2 I, 3 SP, 4 SI.
        frame_num, poc_lsb: as coded (poc_lsb 0 unless POC type 0).
        ref0_not_previous: list 0 is rearranged so that its first entry is not the previous reference frame.
        ref0_weighted: refIdx 0 of list 0 has explicit weights.
        long_term: an IDR picture marked as a long-term reference.
        mmco: the picture marks references itself (adaptive_ref_pic_marking_mode_flag).
        cabac_init, qp: cabac_init_idc and SliceQPY.
        data_pos: bit position of the slice data in the RBSP (CABAC: after the alignment bits).
    """

    nal_type: int
    ref_idc: int
    first_mb: int
    slice_type: int
    pps_id: int
    frame_num: int
    poc_lsb: int
    ref0_not_previous: bool
    ref0_weighted: bool
    long_term: bool
    mmco: bool
    cabac_init: int
    qp: int
    data_pos: int


def _list_modification(bits: Bits) -> bool:
    """Read one ref_pic_list_modification loop; whether its first entry is other than the previous frame
    (abs_diff_pic_num_minus1 0, subtracted: PicNum CurrPicNum - 1)."""
    first, moved = True, False
    while True:
        idc = bits.ue()
        if idc == 3:
            return moved
        if idc > 5:
            raise Unsupported("list modification")
        diff = bits.ue()
        if first and not (idc == 0 and diff == 0):
            moved = True
        first = False


def _weights(bits: Bits, count: int, chroma: bool) -> bool:
    """Read one list's pred_weight_table entries; whether its entry 0 has explicit weights."""
    first = False
    for i in range(count):
        if bits.u(1):
            first = first or i == 0
            bits.se()
            bits.se()
        if chroma and bits.u(1):
            first = first or i == 0
            for _ in range(4):
                bits.se()
    return first


def _marking(bits: Bits, idr: bool) -> tuple[bool, bool]:
    """Read dec_ref_pic_marking: (long-term IDR, adaptive marking)."""
    if idr:
        bits.u(1)
        return bool(bits.u(1)), False
    if not bits.u(1):
        return False, False
    while (op := bits.ue()) != 0:
        if op > 6:
            raise Unsupported("memory management operation")
        for reads in ((1, 3), (2,), (3, 6), (4,)):
            if op in reads:
                bits.ue()
    return False, True


def parse_slice(rbsp: bytes, sps_of: dict[int, Sps], pps_of: dict[int, Pps]) -> tuple[Slice, Bits, Sps, Pps]:
    """The header of a coded slice NAL unit (type 1 or 5; RBSP with its header byte) and the reader left at its
    data, with the parameter sets it refers to."""
    nal_type, ref_idc = rbsp[0] & 0x1F, (rbsp[0] >> 5) & 3
    bits = Bits(rbsp, 8)
    first_mb, slice_type, pps_id = bits.ue(), bits.ue() % 5, bits.ue()
    pps = pps_of.get(pps_id)
    sps = sps_of.get(pps.sps_id) if pps is not None else None
    if pps is None or sps is None:
        raise Unsupported("a parameter set not seen")
    if pps.slice_groups > 1 or pps.redundant_pic_cnt or not sps.frame_mbs_only:
        raise Unsupported("slice groups, redundant pictures or fields")
    frame_num = bits.u(sps.log2_max_frame_num)
    if nal_type == 5:
        bits.ue()  # idr_pic_id
    poc_lsb = 0
    if sps.poc_type == 0:
        poc_lsb = bits.u(sps.log2_max_poc_lsb)
        if pps.bottom_field_pic_order:
            bits.se()
    elif sps.poc_type == 1 and not sps.delta_pic_order_always_zero:
        bits.se()
        if pps.bottom_field_pic_order:
            bits.se()
    if slice_type == 1:
        bits.u(1)  # direct_spatial_mv_pred_flag
    num_l0, num_l1 = pps.num_ref_l0, 1
    if slice_type in (0, 1, 3) and bits.u(1):
        num_l0 = bits.ue() + 1
        if slice_type == 1:
            num_l1 = bits.ue() + 1
    moved = False
    if slice_type not in (2, 4):
        moved = bool(bits.u(1)) and _list_modification(bits)
        if slice_type == 1 and bits.u(1):
            _list_modification(bits)
    weighted = False
    if (pps.weighted_pred and slice_type in (0, 3)) or (pps.weighted_bipred_idc == 1 and slice_type == 1):
        bits.ue()
        if sps.chroma:
            bits.ue()
        weighted = _weights(bits, num_l0, sps.chroma)
        if slice_type == 1:
            _weights(bits, num_l1, sps.chroma)
    long_term, mmco = _marking(bits, nal_type == 5) if ref_idc else (False, False)
    cabac_init = 0
    if pps.cabac and slice_type not in (2, 4):
        cabac_init = bits.ue()
        if cabac_init > 2:
            raise Unsupported("cabac_init_idc")
    qp = pps.pic_init_qp + bits.se()
    if slice_type in (3, 4):
        raise Unsupported("SP and SI slices")
    if pps.deblocking_control and bits.ue() != 1:
        bits.se()
        bits.se()
    if pps.cabac:
        bits.pos = -(-bits.pos // 8) * 8
    return (Slice(nal_type, ref_idc, first_mb, slice_type, pps_id, frame_num, poc_lsb, moved, weighted, long_term,
                  mmco, cabac_init, qp, bits.pos), bits, sps, pps)


# CABAC: rangeTabLPS and transIdxLPS (Tables 9-44, 9-45), and (m, n) of ctxIdx 11 -- mb_skip_flag of a P slice
# whose left and upper neighbours are skipped or absent -- for cabac_init_idc 0, 1, 2 (Table 9-13).
RANGE_LPS = (
    (128, 176, 208, 240), (128, 167, 197, 227), (128, 158, 187, 216), (123, 150, 178, 205),
    (116, 142, 169, 195), (111, 135, 160, 185), (105, 128, 152, 175), (100, 122, 144, 166),
    (95, 116, 137, 158), (90, 110, 130, 150), (85, 104, 123, 142), (81, 99, 117, 135),
    (77, 94, 111, 128), (73, 89, 105, 122), (69, 85, 100, 116), (66, 80, 95, 110),
    (62, 76, 90, 104), (59, 72, 86, 99), (56, 69, 81, 94), (53, 65, 77, 89),
    (51, 62, 73, 85), (48, 59, 69, 80), (46, 56, 66, 76), (43, 53, 63, 72),
    (41, 50, 59, 69), (39, 48, 56, 65), (37, 45, 54, 62), (35, 43, 51, 59),
    (33, 41, 48, 56), (32, 39, 46, 53), (30, 37, 43, 50), (29, 35, 41, 48),
    (27, 33, 39, 45), (26, 31, 37, 43), (24, 30, 35, 41), (23, 28, 33, 39),
    (22, 27, 32, 37), (21, 26, 30, 35), (20, 24, 29, 33), (19, 23, 27, 31),
    (18, 22, 26, 30), (17, 21, 25, 28), (16, 20, 23, 27), (15, 19, 22, 25),
    (14, 18, 21, 24), (14, 17, 20, 23), (13, 16, 19, 22), (12, 15, 18, 21),
    (12, 14, 17, 20), (11, 14, 16, 19), (11, 13, 15, 18), (10, 12, 15, 17),
    (10, 12, 14, 16), (9, 11, 13, 15), (9, 11, 12, 14), (8, 10, 12, 14),
    (8, 9, 11, 13), (7, 9, 11, 12), (7, 9, 10, 12), (7, 8, 10, 11),
    (6, 8, 9, 11), (6, 7, 9, 10), (6, 7, 8, 9), (2, 2, 2, 2),
)
TRANS_LPS = (0, 0, 1, 2, 2, 4, 4, 5, 6, 7, 8, 9, 9, 11, 11, 12, 13, 13, 15, 15, 16, 16, 18, 18, 19, 19, 21, 21,
             22, 22, 23, 24, 24, 25, 26, 26, 27, 27, 28, 29, 29, 30, 30, 30, 31, 32, 32, 33, 33, 33, 34, 34, 35, 35,
             35, 36, 36, 36, 37, 37, 37, 38, 38, 63)
SKIP_CONTEXT = ((23, 33), (22, 25), (29, 16))


def _skip_context(init: int, qp: int) -> tuple[int, int]:
    """(pStateIdx, valMPS) of ctxIdx 11 at the start of a slice (9.3.1.1)."""
    m, n = SKIP_CONTEXT[init]
    pre = max(1, min(126, ((m * max(0, min(51, qp))) >> 4) + n))
    return (63 - pre, 0) if pre <= 63 else (pre - 64, 1)


def _doublings(rng: int) -> int:
    """RenormD (9.3.3.2.2): how many times the decoder doubles its range ``rng`` (2 to 510) to bring it back to at
    least 256, reading one more bit of the slice data each time."""
    return max(0, 9 - rng.bit_length())


def _renorm(rng: int, offset: int, p: int, value: int, total: int) -> tuple[int, int, int]:
    """RenormD over the slice data ``value`` (``total`` bits, bit ``p`` next): (range, offset, next bit) with the
    bits read shifted into ``offset``; a next bit past ``total`` where the data ended first."""
    shift = _doublings(rng)
    p += shift
    if p > total:
        return rng, offset, p
    return rng << shift, (offset << shift) | ((value >> (total - p)) & ((1 << shift) - 1)), p


def skip_path_bits(init: int, qp: int, count: int) -> int:
    """Bits a CABAC decoder reads to decode ``count`` skipped macroblocks and the end of their slice. The range
    register follows the decoded bins alone, never the data, so every slice of that content reads exactly this
    many: the decoded bins depend on those bits and on nothing after them."""
    state, mps = _skip_context(init, qp)
    rng, shifts = 510, 0
    for left in range(count - 1, -1, -1):
        lps = RANGE_LPS[state][(rng >> 6) & 3]
        if mps:   # a skip flag of 1 is the most probable symbol
            rng -= lps
            state = min(state + 1, 62)
        else:
            rng = lps
            mps = int(state == 0)
            state = TRANS_LPS[state]
        shift = _doublings(rng)
        rng, shifts = rng << shift, shifts + shift
        rng -= 2   # end_of_slice_flag: 1 on the last macroblock ends the slice without reading further
        if left:
            shift = _doublings(rng)
            rng, shifts = rng << shift, shifts + shift
    return 9 + shifts


def cabac_skip_run(data: bytes, pos: int, init: int, qp: int, count: int) -> bool:
    """Whether the CABAC slice data from bit ``pos`` of ``data`` decodes to ``count`` skipped macroblocks and then
    the end of the slice (9.3.3.2: DecodeDecision on ctxIdx 11, DecodeTerminate), reading ``skip_path_bits``."""
    state, mps = _skip_context(init, qp)
    value = int.from_bytes(data + bytes(8), "big")  # zeros past the end, as FFmpeg's padding
    total = len(data) * 8 + 64
    p = pos + 9
    if p > total:
        return False
    offset = (value >> (total - p)) & 0x1FF
    rng = 510
    for left in range(count - 1, -1, -1):
        lps = RANGE_LPS[state][(rng >> 6) & 3]
        rng -= lps
        if offset >= rng:   # the least probable symbol
            bit = 1 - mps
            offset -= rng
            rng = lps
            mps ^= int(state == 0)
            state = TRANS_LPS[state]
        else:
            bit = mps
            state = min(state + 1, 62)
        rng, offset, p = _renorm(rng, offset, p, value, total)
        if p > total:
            return False
        if not bit:
            return False   # a coded macroblock
        rng -= 2
        if offset >= rng:
            return not left   # the slice ends here: right only after the last of ``count``
        if not left:
            return False
        rng, offset, p = _renorm(rng, offset, p, value, total)
        if p > total:
            return False
    return False
