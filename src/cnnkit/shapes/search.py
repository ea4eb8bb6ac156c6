"""The searches behind the fixes and ``cnnkit shape --output``, by arithmetic instead of
enumeration: each answer takes time independent of how large I, F, S or P are.

A padding or filter fix is the nearest member of an arithmetic progression (the values that make
(I - F + 2P)/S a whole number), a stride fix the nearest divisor of I + 2P - F, found from its
prime factors. Spans beyond :data:`FACTOR_LIMIT` are not factored: their stride fix is searched
among the divisors below :data:`SMALL_DIVISORS` and their cofactors only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cnnkit.errors import ConfigError

FACTOR_LIMIT = 2**64  # spans up to this are factored completely (Pollard's rho)
SMALL_DIVISORS = 2**16  # beyond it, stride fixes come from divisors below this and cofactors
SOLUTIONS_LIMIT = 100_000  # solutions() lists at most this many (F, S, P)
_SMALL_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def nearest_in_progression(
    residue: int, modulus: int, lo: int, hi: int, target: int, exclude: int | None = None
) -> int | None:
    """The v = residue (mod modulus) with lo <= v <= hi and v != exclude nearest ``target``
    (on a tie the smaller one), or None.

    >>> nearest_in_progression(1, 3, 0, 100, 50)
    49
    """
    if lo > hi:
        return None
    first = lo + (residue - lo) % modulus
    last = hi - (hi - residue) % modulus
    if first > last:
        return None
    anchor = min(max(target, first), last)
    below = anchor - (anchor - residue) % modulus  # the largest member <= anchor
    candidates = (below - modulus, below, below + modulus, below + 2 * modulus)
    valid = [c for c in candidates if first <= c <= last and c != exclude]
    return min(valid, key=lambda c: (abs(c - target), c)) if valid else None


def _is_prime(n: int) -> bool:
    """Miller-Rabin with the first 12 primes as bases: exact for n < 3.3 * 10**24."""
    if n < 2:
        return False
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for a in _SMALL_PRIMES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _split(n: int) -> int:
    """A non-trivial factor of the odd composite ``n`` (Pollard's rho, Brent's variant)."""
    for c in range(1, n):
        y, m, g, r, q = 2, 128, 1, 1, 1
        x = ys = y
        while g == 1:
            x = y
            for _ in range(r):
                y = (y * y + c) % n
            k = 0
            while k < r and g == 1:
                ys = y
                for _ in range(min(m, r - k)):
                    y = (y * y + c) % n
                    q = q * abs(x - y) % n
                g = math.gcd(q, n)
                k += m
            r *= 2
        if g == n:
            g = 1
            while g == 1:
                ys = (ys * ys + c) % n
                g = math.gcd(abs(x - ys), n)
        if g != n:
            return g
    raise AssertionError(f"no factor of {n} found")  # unreachable for composite n


def _prime_factors(n: int) -> dict[int, int]:
    """{prime: exponent} of 1 <= n <= FACTOR_LIMIT."""
    factors: dict[int, int] = {}
    for p in range(2, 1000):
        while n % p == 0:
            factors[p] = factors.get(p, 0) + 1
            n //= p
    pending = [n] if n > 1 else []
    while pending:
        m = pending.pop()
        if _is_prime(m):
            factors[m] = factors.get(m, 0) + 1
        else:
            part = _split(m)
            pending += [part, m // part]
    return factors


def divisors(n: int) -> list[int]:
    """The divisors of ``n`` >= 1 in increasing order; beyond :data:`FACTOR_LIMIT` only those
    below :data:`SMALL_DIVISORS` and their cofactors.

    >>> divisors(12)
    [1, 2, 3, 4, 6, 12]
    """
    if n > FACTOR_LIMIT:
        small = [d for d in range(1, SMALL_DIVISORS) if n % d == 0]
        return sorted({*small, *(n // d for d in small)})
    found = [1]
    for prime, exponent in _prime_factors(n).items():
        found = [d * prime**e for d in found for e in range(exponent + 1)]
    return sorted(found)


def nearest_divisor(n: int, target: int, exclude: int | None = None) -> int | None:
    """The divisor of ``n`` >= 1 nearest ``target`` other than ``exclude`` (tie: the smaller)."""
    valid = [d for d in divisors(n) if d != exclude]
    return min(valid, key=lambda d: (abs(d - target), d)) if valid else None


def nearest_symmetric_padding(
    size: int, kernel: int, stride: int, target: int, limit: int
) -> int | None:
    """The P in 0..limit, P != target, nearest ``target`` with (size + 2P - kernel) a multiple of
    ``stride`` and size + 2P >= kernel: the solutions of 2P = kernel - size (mod stride)."""
    g = math.gcd(2, stride)
    if (kernel - size) % g:
        return None
    modulus = stride // g
    residue = ((kernel - size) // g) * pow(2 // g, -1, modulus) % modulus if modulus > 1 else 0
    lowest = max(0, -((size - kernel) // 2))  # ceil((kernel - size) / 2)
    return nearest_in_progression(residue, modulus, lowest, limit, target, exclude=target)


@dataclass(frozen=True)
class Solution:
    kernel: int
    stride: int
    padding: int


def solutions(
    size: int,
    output: int,
    *,
    max_kernel: int = 11,
    max_stride: int = 4,
    kernel: int | None = None,
    stride: int | None = None,
    padding: int | None = None,
) -> list[Solution]:
    """Every (F, S, P) with small values that maps ``size`` to ``output`` exactly.

    Small means F <= ``max_kernel``, S <= min(F, ``max_stride``) (a larger stride skips input
    pixels) and P <= F // 2 (as "same" padding; more mostly adds windows of zeros). For each S,
    P = (F + (O - 1)*S - I)/2 is determined by F, so the answer is counted before it is listed;
    more than :data:`SOLUTIONS_LIMIT` answers raise :class:`ConfigError`.

    ``kernel``, ``stride`` or ``padding`` fix that letter (``cnnkit shape --output O --filter
    F``): only the ways with that value are listed, and the letter's own bound is lifted.

    >>> [(s.kernel, s.stride, s.padding) for s in solutions(10, 5)][:4]
    [(2, 2, 0), (4, 2, 1), (6, 1, 0), (6, 2, 2)]
    >>> [(s.kernel, s.stride, s.padding) for s in solutions(10, 5, kernel=10**12)]
    [(1000000000000, 1, 499999999997), (1000000000000, 2, 499999999999)]
    >>> [(s.kernel, s.stride, s.padding) for s in solutions(10, 5, kernel=4)]
    [(4, 2, 1)]
    """
    if (kernel, stride, padding) != (None, None, None):
        found = _fixed(size, output, kernel, stride, padding, max_kernel, max_stride)
        return sorted(found, key=lambda s: (s.kernel, s.stride, s.padding))
    ranges, total = [], 0
    first_stride = 1 if output == 1 else max(1, -((max_kernel - size) // (output - 1)))
    last_stride = min(max_kernel, max_stride)
    if output > 1:
        last_stride = min(last_stride, size // (output - 1))
    for stride in range(first_stride, last_stride + 1):
        c = (output - 1) * stride - size  # P = (F + c)/2 needs F + c even, F >= -c, c <= 0
        start = max(-c, stride, 1)
        start += (start - c) % 2
        if c > 0 or start > max_kernel:
            continue
        ranges.append((stride, c, start))
        total += (max_kernel - start) // 2 + 1
        if total > SOLUTIONS_LIMIT:
            raise ConfigError(
                f"solutions(I={size}, O={output}, max_kernel={max_kernel}, "
                f"max_stride={max_stride}): more than {SOLUTIONS_LIMIT:,} ways (F, S, P); "
                "give a smaller max_kernel (cnnkit shape: a smaller --filter)"
            )
    found = [
        Solution(kernel, stride, (kernel + c) // 2)
        for stride, c, start in ranges
        for kernel in range(start, max_kernel + 1, 2)
    ]
    return sorted(found, key=lambda s: (s.kernel, s.stride, s.padding))


def _counted(where: str, ways: range) -> range:
    if len(ways) > SOLUTIONS_LIMIT:
        raise ConfigError(
            f"solutions({where}): more than {SOLUTIONS_LIMIT:,} ways (F, S, P); fix another "
            "letter too (cnnkit shape: give --stride S or --padding P as well)"
        )
    return ways


def _fixed(size, output, kernel, stride, padding, max_kernel, max_stride) -> list[Solution]:
    """:func:`solutions` with some letters fixed: each case by arithmetic, counted first."""
    m = output - 1  # I + 2P - F = (O - 1) * S
    where = f"I={size}, O={output}, F={kernel}, S={stride}, P={padding}"
    if kernel is not None and stride is not None:
        twice = kernel + m * stride - size  # 2P
        bound = twice // 2 == padding if padding is not None else twice // 2 <= kernel // 2
        ok = twice >= 0 and twice % 2 == 0 and bound
        return [Solution(kernel, stride, twice // 2)] if ok else []
    if stride is not None:  # F free: F = I + 2P - (O - 1)S
        c = m * stride - size
        if padding is not None:
            found = 2 * padding - c
            return [Solution(found, stride, padding)] if 1 <= found <= max_kernel else []
        if c > 0:  # P <= F // 2 needs (O - 1)S <= I
            return []
        start = max(-c, 1)
        start += (start + c) % 2  # F + c = 2P is even
        kernels = _counted(where, range(start, max_kernel + 1, 2))
        return [Solution(k, stride, (k + c) // 2) for k in kernels]
    if kernel is None:  # only P fixed: F = I + 2P - (O - 1)S, with S <= F
        n = size + 2 * padding
        if m == 0:
            strides = range(1, min(n, max_stride) + 1) if n <= max_kernel else range(0)
        else:
            lo = max(1, -((max_kernel - n) // m))  # F <= max_kernel
            strides = range(lo, min(max_stride, (n - 1) // m, n // (m + 1)) + 1)
        return [Solution(n - m * s, s, padding) for s in _counted(where, strides)]
    top = min(kernel, max_stride)  # S free: S <= min(F, max_stride)
    if padding is not None:
        span = size + 2 * padding - kernel
        if m == 0:
            strides = range(1, top + 1) if span == 0 else range(0)
        elif span > 0 and span % m == 0 and span // m <= top:
            strides = range(span // m, span // m + 1)
        else:
            strides = range(0)
        return [Solution(kernel, s, padding) for s in _counted(where, strides)]
    if m == 0:
        fits = kernel >= size and (kernel - size) % 2 == 0
        strides = range(1, top + 1) if fits else range(0)
    else:  # I - F <= (O - 1)S <= I, with (O - 1)S = I - F (mod 2)
        lo, hi = max(1, -((kernel - size) // m)), min(top, size // m)
        if m % 2 == 0:
            strides = range(lo, hi + 1) if (size - kernel) % 2 == 0 else range(0)
        else:
            strides = range(lo + (lo - size + kernel) % 2, hi + 1, 2)
    ways = _counted(where, strides)
    return [Solution(kernel, s, (kernel + m * s - size) // 2) for s in ways]
