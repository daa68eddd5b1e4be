"""The argsort of one row, as a helper function in LLVM IR and in C (schedule step ``ArgSort``).

``name(keys, n, stride, out, scratch)`` writes into ``out`` (n int64) the positions
that sort the ``n`` keys at ``keys`` (``stride`` bytes apart) ascending, in the stable
order of ``numpy.argsort(kind="stable")``: equal keys keep their order, -0.0 equals 0.0,
and NaN comes after every number. Each key becomes a uint64 in the same order (a float,
widened to float64, by its bits: positives with the sign bit set, negatives inverted;
every NaN the largest value; a signed integer with its sign bit flipped), paired with
its position in ``scratch`` (4n words: two arrays of n pairs), and the pairs are merge
sorted bottom up, passing between the two arrays: sequential passes over the data, a
run's left element first on equal keys.
"""

from __future__ import annotations

from theanine.codegen.c import MEM_TYPES
from theanine.codegen.llvm import LLVM_TYPES

#: scratch words the helper needs per key
SCRATCH_WORDS = 4

_SIGN = -(1 << 63)  # the i64 with only the sign bit set


def _llvm_key(dtype: str) -> str:
    """IR computing the order key ``%key`` (i64) of the element at ``%p``."""
    t = LLVM_TYPES[dtype]
    if dtype.startswith("float"):
        widen = f"  %raw = load {t}, ptr %p\n" + (
            "  %v = fpext float %raw to double\n" if t == "float" else "  %v = fadd double %raw, 0.0\n")
        return widen + f"""  %zero = fcmp oeq double %v, 0.0
  %plain = select i1 %zero, double 0.0, double %v
  %bits = bitcast double %plain to i64
  %negative = icmp slt i64 %bits, 0
  %inverted = xor i64 %bits, -1
  %flagged = or i64 %bits, {_SIGN}
  %ordered = select i1 %negative, i64 %inverted, i64 %flagged
  %nan = fcmp uno double %v, %v
  %key = select i1 %nan, i64 -1, i64 %ordered"""
    if dtype.startswith("uint") or dtype == "bool":
        return f"  %raw = load {t}, ptr %p\n" + (
            f"  %key = zext {t} %raw to i64" if t != "i64" else "  %key = add i64 %raw, 0")
    return f"  %raw = load {t}, ptr %p\n" + (
        f"  %wide = sext {t} %raw to i64\n" if t != "i64" else "  %wide = add i64 %raw, 0\n") + \
        f"  %key = xor i64 %wide, {_SIGN}"


def llvm_helper(name: str, dtype: str) -> str:
    """The LLVM IR of ``name`` for keys of ``dtype``."""
    return f"""
define internal void @{name}(ptr %keys, i64 %n, i64 %stride, ptr %out, ptr %scratch) nounwind {{
entry:
  %twice_n = shl i64 %n, 1
  %second = getelementptr i64, ptr %scratch, i64 %twice_n
  br label %fill
fill:
  %i = phi i64 [0, %entry], [%i_next, %fill_body]
  %filling = icmp slt i64 %i, %n
  br i1 %filling, label %fill_body, label %passes
fill_body:
  %offset = mul i64 %i, %stride
  %p = getelementptr i8, ptr %keys, i64 %offset
{_llvm_key(dtype)}
  %i_pair = shl i64 %i, 1
  %i_key = getelementptr i64, ptr %scratch, i64 %i_pair
  store i64 %key, ptr %i_key
  %i_pos = getelementptr i64, ptr %i_key, i64 1
  store i64 %i, ptr %i_pos
  %i_next = add i64 %i, 1
  br label %fill
passes:
  %width = phi i64 [1, %fill], [%width_next, %pass_end]
  %from = phi ptr [%scratch, %fill], [%to, %pass_end]
  %to = phi ptr [%second, %fill], [%from, %pass_end]
  %more_passes = icmp slt i64 %width, %n
  br i1 %more_passes, label %runs, label %emit
runs:
  %lo = phi i64 [0, %passes], [%lo_next, %run_end]
  %more_runs = icmp slt i64 %lo, %n
  br i1 %more_runs, label %run, label %pass_end
run:
  %double_width = shl i64 %width, 1
  %mid_end = add i64 %lo, %width
  %mid_fits = icmp slt i64 %mid_end, %n
  %mid = select i1 %mid_fits, i64 %mid_end, i64 %n
  %hi_end = add i64 %lo, %double_width
  %hi_fits = icmp slt i64 %hi_end, %n
  %hi = select i1 %hi_fits, i64 %hi_end, i64 %n
  br label %merge
merge:
  %a = phi i64 [%lo, %run], [%a_next, %take]
  %b = phi i64 [%mid, %run], [%b_next, %take]
  %k = phi i64 [%lo, %run], [%k_next, %take]
  %a_left = icmp slt i64 %a, %mid
  %b_left = icmp slt i64 %b, %hi
  %both = and i1 %a_left, %b_left
  br i1 %both, label %compare, label %drain
compare:
  %a_pair = shl i64 %a, 1
  %a_key_at = getelementptr i64, ptr %from, i64 %a_pair
  %a_key = load i64, ptr %a_key_at
  %b_pair = shl i64 %b, 1
  %b_key_at = getelementptr i64, ptr %from, i64 %b_pair
  %b_key = load i64, ptr %b_key_at
  %b_first = icmp ult i64 %b_key, %a_key
  br label %take
drain:
  %any = or i1 %a_left, %b_left
  %b_only = xor i1 %a_left, true
  br i1 %any, label %take, label %run_end
take:
  %from_b = phi i1 [%b_first, %compare], [%b_only, %drain]
  %src = select i1 %from_b, i64 %b, i64 %a
  %src_pair = shl i64 %src, 1
  %src_at = getelementptr i64, ptr %from, i64 %src_pair
  %moved_key = load i64, ptr %src_at
  %src_pos_at = getelementptr i64, ptr %src_at, i64 1
  %moved_pos = load i64, ptr %src_pos_at
  %k_pair = shl i64 %k, 1
  %dst_at = getelementptr i64, ptr %to, i64 %k_pair
  store i64 %moved_key, ptr %dst_at
  %dst_pos_at = getelementptr i64, ptr %dst_at, i64 1
  store i64 %moved_pos, ptr %dst_pos_at
  %b_step = zext i1 %from_b to i64
  %a_step = sub i64 1, %b_step
  %a_next = add i64 %a, %a_step
  %b_next = add i64 %b, %b_step
  %k_next = add i64 %k, 1
  br label %merge
run_end:
  %lo_next = add i64 %lo, %double_width
  br label %runs
pass_end:
  %width_next = shl i64 %width, 1
  br label %passes
emit:
  %e = phi i64 [0, %passes], [%e_next, %emit_body]
  %emitting = icmp slt i64 %e, %n
  br i1 %emitting, label %emit_body, label %exit
emit_body:
  %e_pair = shl i64 %e, 1
  %e_pos = add i64 %e_pair, 1
  %e_pos_at = getelementptr i64, ptr %from, i64 %e_pos
  %position = load i64, ptr %e_pos_at
  %out_at = getelementptr i64, ptr %out, i64 %e
  store i64 %position, ptr %out_at
  %e_next = add i64 %e, 1
  br label %emit
exit:
  ret void
}}
"""


def _c_key(dtype: str) -> str:
    """C statements computing ``key`` (uint64_t) of the element at ``p``."""
    t = MEM_TYPES[dtype]
    if dtype.startswith("float"):
        return f"""double v = (double)*(const {t} *)p;
        uint64_t bits;
        if (v == 0.0)
            v = 0.0;
        memcpy(&bits, &v, sizeof bits);
        key = v != v ? UINT64_MAX : (bits >> 63) ? ~bits : bits | ((uint64_t)1 << 63);"""
    if dtype.startswith("uint") or dtype == "bool":
        return f"key = (uint64_t)*(const {t} *)p;"
    return f"key = (uint64_t)(int64_t)*(const {t} *)p ^ ((uint64_t)1 << 63);"


def c_helper(name: str, dtype: str) -> str:
    """The C of ``name`` for keys of ``dtype``."""
    return f"""
static void {name}(const char *keys, int64_t n, int64_t stride, int64_t *out, uint64_t *scratch)
{{
    uint64_t *from = scratch, *to = scratch + 2 * n;
    for (int64_t i = 0; i < n; i++) {{
        const char *p = keys + i * stride;
        uint64_t key;
        {_c_key(dtype)}
        from[2 * i] = key;
        from[2 * i + 1] = (uint64_t)i;
    }}
    for (int64_t width = 1; width < n; width *= 2) {{
        for (int64_t lo = 0; lo < n; lo += 2 * width) {{
            const int64_t mid = lo + width < n ? lo + width : n;
            const int64_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            int64_t a = lo, b = mid;
            for (int64_t k = lo; k < hi; k++) {{
                const bool from_b = a >= mid || (b < hi && from[2 * b] < from[2 * a]);
                const int64_t src = from_b ? b++ : a++;
                to[2 * k] = from[2 * src];
                to[2 * k + 1] = from[2 * src + 1];
            }}
        }}
        uint64_t *const swap = from;
        from = to;
        to = swap;
    }}
    for (int64_t i = 0; i < n; i++)
        out[i] = (int64_t)from[2 * i + 1];
}}
"""
