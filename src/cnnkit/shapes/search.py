"""The searches behind the fixes, by arithmetic instead of enumeration: each answer takes time
independent of how large I, F, S or P are (``cnnkit shape --output`` lists its ways with
:mod:`cnnkit.shapes.ways`).

A padding or filter fix is the nearest member of an arithmetic progression (the values that make
(I - F + 2P)/S a whole number), a stride fix the nearest divisor of I + 2P - F, found from its
prime factors. Spans beyond :data:`FACTOR_LIMIT` are not factored: their stride fix is searched
among the divisors below :data:`SMALL_DIVISORS` and their cofactors only.
"""

from __future__ import annotations

import math

FACTOR_LIMIT = 2**64  # spans up to this are factored completely (Pollard's rho)
SMALL_DIVISORS = 2**16  # beyond it, stride fixes come from divisors below this and cofactors
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
