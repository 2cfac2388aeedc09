"""Numba kernels over a RoutingKit contraction hierarchy: upward searches with start costs, path unpacking.

Node ids here are CH ranks. ``fw_*`` arrays are the upward forward graph (arc x->y, y > x, original
direction), ``bw_*`` the upward backward graph (arc x->y, y > x, standing for the original path y->x).
A shortcut arc is ``bw[first]`` followed by ``fw[second]`` in travel order, in both graphs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

INF = np.inf


@njit(cache=True)
def _push(hk, hv, size, key, val):
    if size >= hk.shape[0]:
        nk = np.empty(hk.shape[0] * 2, dtype=hk.dtype)
        nv = np.empty(hv.shape[0] * 2, dtype=hv.dtype)
        nk[:size] = hk[:size]
        nv[:size] = hv[:size]
        hk, hv = nk, nv
    i = size
    hk[i] = key
    hv[i] = val
    while i > 0:
        p = (i - 1) >> 1
        if hk[p] <= hk[i]:
            break
        hk[p], hk[i] = hk[i], hk[p]
        hv[p], hv[i] = hv[i], hv[p]
        i = p
    return hk, hv, size + 1


@njit(cache=True)
def _pop(hk, hv, size):
    key, val = hk[0], hv[0]
    size -= 1
    hk[0] = hk[size]
    hv[0] = hv[size]
    i = 0
    while True:
        a = 2 * i + 1
        if a >= size:
            break
        b = a + 1
        c = b if b < size and hk[b] < hk[a] else a
        if hk[i] <= hk[c]:
            break
        hk[c], hk[i] = hk[i], hk[c]
        hv[c], hv[i] = hv[i], hv[c]
        i = c
    return key, val, size


@njit(cache=True)
def upward_search(
    first_out,
    head,
    weight,
    alen,
    seeds,
    seed_cost,
    seed_len,
    dist,
    lens,
    pred,
    visited,
    hk,
    hv,
    meet_dist,
    meet_len,
    use_meet,
    opp_first_out,
    opp_head,
    opp_weight,
):
    """Dijkstra on the upward graph from several seeds with start costs.

    ``opp_*`` is the other upward graph, for stall-on-demand. Fills dist/lens/pred for every node it
    reaches and lists them in ``visited`` (returned count), so the caller can reset them. With ``use_meet``
    it also meets a finished opposite search (``meet_dist``) and stops once no better meeting
    can come; returns (count, best time, best node, metres there).
    """
    nvis = 0
    size = 0
    best = INF
    best_node = -1
    best_len = 0.0
    for k in range(seeds.shape[0]):
        s = seeds[k]
        c = seed_cost[k]
        if dist[s] == INF:
            visited[nvis] = s
            nvis += 1
        if c < dist[s]:
            dist[s] = c
            lens[s] = seed_len[k]
            pred[s] = -1
            hk, hv, size = _push(hk, hv, size, c, s)
    while size > 0:
        d, x, size = _pop(hk, hv, size)
        if d > dist[x]:
            continue
        if use_meet:
            if d >= best:
                break
            md = meet_dist[x]
            if md < INF and d + md < best:
                best = d + md
                best_node = x
                best_len = lens[x] + meet_len[x]
        # stall on demand: a higher node already reached reaches x cheaper downwards, so x lies on no
        # shortest up-down path and need not be expanded (its label may stay an overestimate: safe to meet)
        stalled = False
        for b in range(opp_first_out[x], opp_first_out[x + 1]):
            z = opp_head[b]
            if dist[z] + opp_weight[b] <= d:
                stalled = True
                break
        if stalled:
            continue
        for a in range(first_out[x], first_out[x + 1]):
            y = head[a]
            nd = d + weight[a]
            if nd < dist[y]:
                if dist[y] == INF:
                    visited[nvis] = y
                    nvis += 1
                dist[y] = nd
                lens[y] = lens[x] + alen[a]
                pred[y] = a
                hk, hv, size = _push(hk, hv, size, nd, y)
    return nvis, best, best_node, best_len, hk, hv


@njit(cache=True)
def reset(dist, lens, pred, visited, nvis):
    for i in range(nvis):
        v = visited[i]
        dist[v] = INF
        lens[v] = 0.0
        pred[v] = -1


@njit(cache=True)
def arc_lengths(fw_w, fw_orig, fw_first, fw_second, bw_w, bw_orig, bw_first, bw_second, input_len):
    """Metres of every CH arc: originals from the input arcs, shortcuts as the sum of their two parts
    (parts weigh strictly less than the shortcut, so ascending weight order has them ready)."""
    nf = fw_w.shape[0]
    fl = np.zeros(nf)
    bl = np.zeros(bw_w.shape[0])
    order = np.argsort(np.concatenate((fw_w, bw_w)), kind="mergesort")
    for i in order:
        if i < nf:
            if fw_orig[i]:
                fl[i] = input_len[fw_first[i]]
            else:
                fl[i] = bl[fw_first[i]] + fl[fw_second[i]]
        else:
            j = i - nf
            if bw_orig[j]:
                bl[j] = input_len[bw_first[j]]
            else:
                bl[j] = bl[bw_first[j]] + fl[bw_second[j]]
    return fl, bl


@njit(cache=True)
def unpack(arc, is_fw, fw_orig, fw_first, fw_second, bw_orig, bw_first, bw_second, out, nout):
    """Append the input arcs behind one CH arc to ``out`` in travel order; returns the new count."""
    stack_arc = np.empty(256, dtype=np.int64)
    stack_fw = np.empty(256, dtype=np.bool_)
    top = 0
    stack_arc[0] = arc
    stack_fw[0] = is_fw
    top = 1
    while top > 0:
        top -= 1
        a = stack_arc[top]
        f = stack_fw[top]
        orig = fw_orig[a] if f else bw_orig[a]
        if orig:
            out[nout] = fw_first[a] if f else bw_first[a]
            nout += 1
            continue
        first = fw_first[a] if f else bw_first[a]
        second = fw_second[a] if f else bw_second[a]
        if top + 2 > stack_arc.shape[0]:
            na = np.empty(stack_arc.shape[0] * 2, dtype=np.int64)
            nf = np.empty(stack_arc.shape[0] * 2, dtype=np.bool_)
            na[:top] = stack_arc[:top]
            nf[:top] = stack_fw[:top]
            stack_arc, stack_fw = na, nf
        # travel order: bw[first] then fw[second]; the stack pops the last pushed first
        stack_arc[top] = second
        stack_fw[top] = True
        stack_arc[top + 1] = first
        stack_fw[top + 1] = False
        top += 2
    return nout


@njit(cache=True)
def many_forward(
    first_out,
    head,
    weight,
    alen,
    opp_first_out,
    opp_head,
    opp_weight,
    seeds,
    seed_cost,
    seed_len,
    seed_offsets,
    dist,
    lens,
    pred,
    visited,
    hk,
    hv,
    meet_dist,
    meet_len,
):
    """One forward search per source (its seeds are ``seeds[seed_offsets[i]:seed_offsets[i+1]]``) against a
    finished backward search; returns each source's best time (inf if none), metres and meeting node."""
    m = seed_offsets.shape[0] - 1
    best_t = np.full(m, INF)
    best_l = np.zeros(m)
    best_n = np.full(m, -1, dtype=np.int64)
    for i in range(m):
        a, b = seed_offsets[i], seed_offsets[i + 1]
        if a == b:
            continue
        nvis, t, node, length, hk, hv = upward_search(
            first_out,
            head,
            weight,
            alen,
            seeds[a:b],
            seed_cost[a:b],
            seed_len[a:b],
            dist,
            lens,
            pred,
            visited,
            hk,
            hv,
            meet_dist,
            meet_len,
            True,
            opp_first_out,
            opp_head,
            opp_weight,
        )
        best_t[i], best_l[i], best_n[i] = t, length, node
        reset(dist, lens, pred, visited, nvis)
    return best_t, best_l, best_n, hk, hv
