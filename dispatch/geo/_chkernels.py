"""Numba kernels over a RoutingKit contraction hierarchy: upward searches with start costs, path unpacking;
the scan of snapping's segment grid (dispatch.geo.snap.SegmentGrid); and a plain Dijkstra tree (the simulator's
tables, dispatch.sim.roads).

Node ids in the searches are CH ranks. ``fw`` is the upward forward graph (arc x->y, y > x, original direction),
``bw`` the upward backward graph (arc x->y, y > x, standing for the original path y->x), both as records
(head, weight, length_m) with ``first_out[x, 0]`` (forward) and ``first_out[x, 1]`` (backward) indexing the
arcs leaving x. A shortcut arc is ``bw[first]`` followed by ``fw[second]`` in travel order, in both graphs.

A search keeps one label record (dist, length_m, pred) per node, lists the nodes it labelled in ``visited``
(so that ``reset`` can clean up after it) and runs a binary heap of (key, node) in ``hk``, ``hv``: the rows
of 2-d arrays, one per search that runs side by side.
"""

from __future__ import annotations

import numpy as np
from numba import njit

INF = np.inf


@njit(cache=True)
def grow(hk, hv):
    """The heap arrays with twice the room in every row (their contents are not kept)."""
    return np.empty((hk.shape[0], 2 * hk.shape[1])), np.empty((hv.shape[0], 2 * hv.shape[1]), dtype=hv.dtype)


@njit(cache=True, inline="always")
def _sift_up(hk, hv, i, key, val):
    """Put (key, val) at slot i of the binary heap and move it up (the caller made room)."""
    hk[i] = key
    hv[i] = val
    while i > 0:
        p = (i - 1) >> 1
        if hk[p] <= hk[i]:
            break
        hk[p], hk[i] = hk[i], hk[p]
        hv[p], hv[i] = hv[i], hv[p]
        i = p


@njit(cache=True, inline="always")
def _pop(hk, hv, size):
    """Take the least (key, val) off the binary heap of ``size`` entries: (key, val, new size)."""
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
def reset(label, visited, r, nvis):
    """Clear the labels row r's search left on the first ``nvis`` nodes it listed."""
    for i in range(nvis):
        v = visited[r, i]
        label[r, v].dist = INF
        label[r, v].length_m = 0.0
        label[r, v].pred = -1


@njit(cache=True)
def searches(
    first_out,
    own,
    arcs,
    opp_arcs,
    max_out,
    seeds,
    seed_cost,
    seed_len,
    seed_offsets,
    label,
    visited,
    hk,
    hv,
    row0,
    row1,
    meet,
    use_meet,
):
    """One Dijkstra search on the upward graph ``arcs`` per source, from its seeds with start costs
    (``seeds[seed_offsets[i]:seed_offsets[i + 1]]``). own is 0 for the forward graph, 1 for the backward one;
    ``opp_arcs`` is the other graph, for stall-on-demand. With ``use_meet`` each search meets a finished
    opposite search (the labels of row ``meet``) and stops once no better meeting can come.

    Each of the rows ``row0`` to ``row1 - 1`` (of ``label``, ``visited``, ``hk`` and ``hv``) runs one search at
    a time, a step of each row in turn, so that one search's waits for memory overlap the others' work;
    searches share nothing, so each answer is the one it gives alone. A row is reset before it takes the next
    source; the last search of each row is left labelled (``reset`` it with the count returned), for its path.

    Returns each source's best time met (inf if none), metres and meeting node, the count of nodes each row
    labelled, and whether a heap ran out of room: then nothing else holds, and the caller resets the rows,
    ``grow``s the heaps and asks again (growing in here would cost reference counting in the hot loop).
    """
    m = seed_offsets.shape[0] - 1
    best_t = np.full(m, INF)
    best_l = np.zeros(m)
    best_n = np.full(m, -1, dtype=np.int64)
    rows = label.shape[0]
    source = np.full(rows, -1, dtype=np.int64)  # the source each row searches for, -1: idle
    nvis = np.zeros(rows, dtype=np.int64)
    size = np.zeros(rows, dtype=np.int64)
    best = np.full(rows, INF)  # each row's best meeting so far: time, node, metres
    node = np.full(rows, -1, dtype=np.int64)
    length = np.zeros(rows)
    opp = 1 - own
    met = label[meet]
    following = 0  # the next source to start
    while True:
        for r in range(row0, row1):  # idle rows take the next sources that have a way onto the graph
            while source[r] < 0 and following < m:
                a, b = seed_offsets[following], seed_offsets[following + 1]
                following += 1
                if a == b:
                    continue
                if b - a > hk.shape[1]:
                    return best_t, best_l, best_n, nvis, True
                reset(label, visited, r, nvis[r])
                source[r], nvis[r], size[r], best[r], node[r], length[r] = following - 1, 0, 0, INF, -1, 0.0
                lab = label[r]
                for k in range(a, b):
                    s, c = seeds[k], seed_cost[k]
                    if lab[s].dist == INF:
                        visited[r, nvis[r]] = s
                        nvis[r] += 1
                    if c < lab[s].dist:
                        lab[s].dist = c
                        lab[s].length_m = seed_len[k]
                        lab[s].pred = -1
                        _sift_up(hk[r], hv[r], size[r], c, s)
                        size[r] += 1
        busy = False
        for r in range(row0, row1):  # one step of every busy row's search
            if source[r] < 0:
                continue
            busy = True
            lab = label[r]
            done = size[r] == 0
            if not done:
                if size[r] + max_out > hk.shape[1]:
                    return best_t, best_l, best_n, nvis, True
                d, x, size[r] = _pop(hk[r], hv[r], size[r])
                if d <= lab[x].dist:
                    if use_meet and d >= best[r]:
                        done = True
                    else:
                        if use_meet and met[x].dist < INF and d + met[x].dist < best[r]:
                            best[r], node[r], length[r] = d + met[x].dist, x, lab[x].length_m + met[x].length_m
                        # stall on demand: a higher node already reached reaches x cheaper downwards, so x lies
                        # on no shortest up-down path and need not be expanded (its label may stay an
                        # overestimate: safe to meet)
                        stalled = False
                        for e in range(first_out[x, opp], first_out[x + 1, opp]):
                            if lab[opp_arcs[e].head].dist + opp_arcs[e].weight <= d:
                                stalled = True
                                break
                        if not stalled:
                            at = lab[x].length_m
                            for e in range(first_out[x, own], first_out[x + 1, own]):
                                y = arcs[e].head
                                nd = d + arcs[e].weight
                                if nd < lab[y].dist:
                                    if lab[y].dist == INF:
                                        visited[r, nvis[r]] = y
                                        nvis[r] += 1
                                    lab[y].dist = nd
                                    lab[y].length_m = at + arcs[e].length_m
                                    lab[y].pred = e
                                    _sift_up(hk[r], hv[r], size[r], nd, y)
                                    size[r] += 1
                done = done or size[r] == 0
            if done:
                i = source[r]
                best_t[i], best_l[i], best_n[i] = best[r], length[r], node[r]
                source[r] = -1
        if not busy:
            return best_t, best_l, best_n, nvis, False


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
def many_to_one(
    first_out,
    fw,
    bw,
    max_out,
    target_seeds,
    target_cost,
    target_len,
    seeds,
    seed_cost,
    seed_len,
    seed_offsets,
    label,
    visited,
    hk,
    hv,
):
    """The backward search from the target's seeds in row 0 of the label, visited and heap arrays, then one
    forward search per source against it in the other rows (``searches``); leaves every row clean. Returns
    each source's best time (inf if none), metres and meeting node, and the heap arrays (grown, maybe)."""
    one = np.zeros(2, dtype=np.int64)
    one[1] = target_seeds.shape[0]
    rows = label.shape[0]
    while True:
        _, _, _, nb, full = searches(
            first_out,
            1,
            bw,
            fw,
            max_out,
            target_seeds,
            target_cost,
            target_len,
            one,
            label,
            visited,
            hk,
            hv,
            0,
            1,
            0,
            False,
        )
        if full:
            reset(label, visited, 0, nb[0])
            hk, hv = grow(hk, hv)
            continue
        best_t, best_l, best_n, nf, full = searches(
            first_out,
            0,
            fw,
            bw,
            max_out,
            seeds,
            seed_cost,
            seed_len,
            seed_offsets,
            label,
            visited,
            hk,
            hv,
            1,
            rows,
            0,
            True,
        )
        for r in range(rows):
            reset(label, visited, r, nb[0] if r == 0 else nf[r])
        if not full:
            return best_t, best_l, best_n, hk, hv
        hk, hv = grow(hk, hv)


# ---- snapping: the segment grid of dispatch.geo.snap.SegmentGrid ------------------------------------------------
@njit(cache=True, inline="always")
def _segment_distance(px, py, ax, ay, bx, by):
    """Point to segment distance, by GEOS's formula (Distance::pointToSegment)."""
    dx = bx - ax
    dy = by - ay
    len2 = dx * dx + dy * dy
    r = ((px - ax) * dx + (py - ay) * dy) / len2 if len2 > 0.0 else 0.0
    if r <= 0.0:
        return np.sqrt((px - ax) * (px - ax) + (py - ay) * (py - ay))
    if r >= 1.0:
        return np.sqrt((px - bx) * (px - bx) + (py - by) * (py - by))
    return abs((ay - py) * dx - (ax - px) * dy) / len2 * np.sqrt(len2)


@njit(cache=True)
def _ring(cx, cy, k, nx, ny, cells):
    """The cells at Chebyshev distance k from cell (cx, cy) that lie on the nx x ny grid, into ``cells``;
    returns their count."""
    n = 0
    for qy in range(max(cy - k, 0), min(cy + k, ny - 1) + 1):
        step = 1 if qy == cy - k or qy == cy + k else 2 * k
        for qx in range(cx - k, cx + k + 1, step):
            if 0 <= qx < nx:
                cells[n] = qy * nx + qx
                n += 1
    return n


@njit(cache=True)
def segment_grid(x, y, seg_start, x0, y0, cell_m, nx, ny):
    """Bucket the segments (segment s from point ``seg_start[s]`` to the next) in every cell their bounding box
    touches: returns (cell_start, cell_seg), cell c holding ``cell_seg[cell_start[c]:cell_start[c + 1]]`` in
    ascending segment order."""
    m = seg_start.shape[0]
    box = np.empty((m, 4), dtype=np.int64)
    cell_start = np.zeros(nx * ny + 1, dtype=np.int64)
    for s in range(m):
        a = seg_start[s]
        box[s, 0] = int(np.floor((min(x[a], x[a + 1]) - x0) / cell_m))
        box[s, 1] = int(np.floor((max(x[a], x[a + 1]) - x0) / cell_m))
        box[s, 2] = int(np.floor((min(y[a], y[a + 1]) - y0) / cell_m))
        box[s, 3] = int(np.floor((max(y[a], y[a + 1]) - y0) / cell_m))
        for qy in range(box[s, 2], box[s, 3] + 1):
            for qx in range(box[s, 0], box[s, 1] + 1):
                cell_start[qy * nx + qx + 1] += 1
    cell_start = np.cumsum(cell_start)
    fill = cell_start[:-1].copy()
    cell_seg = np.empty(cell_start[-1], dtype=np.int32)
    for s in range(m):
        for qy in range(box[s, 2], box[s, 3] + 1):
            for qx in range(box[s, 0], box[s, 1] + 1):
                c = qy * nx + qx
                cell_seg[fill[c]] = s
                fill[c] += 1
    return cell_start, cell_seg


#: what nearest_edges found for a point
SNAP_NONE, SNAP_ONE, SNAP_MEASURE, SNAP_TREE = 0, 1, 2, 3


@njit(cache=True)
def nearest_edges(px, py, x, y, seg_start, seg_edge, cell_start, cell_seg, x0, y0, cell_m, nx, ny, max_m, near_m):
    """For each point, the edges whose segments come within ``near_m`` of its nearest segment.

    Segment ``s`` runs from point ``seg_start[s]`` to the next; cell ``c`` holds the segments
    ``cell_seg[cell_start[c]:cell_start[c + 1]]``. Rings of cells are scanned outwards until they cover the
    nearest distance plus ``near_m`` (a segment r metres away is registered in a cell within that distance).
    Returns (status, point, edge), the candidates listed as (point, edge) pairs; status is SNAP_NONE where no
    segment lies within ``max_m + near_m``, SNAP_ONE where one edge is nearest by more than ``near_m`` and
    within ``max_m - near_m`` (its one candidate), SNAP_MEASURE where 2-4 candidates are that close or the
    nearest is that close to ``max_m`` (an exact measure must decide), SNAP_TREE where more edges are (none
    listed).
    """
    n = px.shape[0]
    status = np.full(n, SNAP_NONE, dtype=np.int64)
    c_pt = np.empty(4 * n, dtype=np.int64)
    c_edge = np.empty(4 * n, dtype=np.int64)
    nc = 0
    reach = max_m + 2.0 * near_m
    cells = np.empty(8 * (int(reach / cell_m) + 2) + 1, dtype=np.int64)
    for i in range(n):
        fx = (px[i] - x0) / cell_m
        fy = (py[i] - y0) / cell_m
        cx, cy = int(np.floor(fx)), int(np.floor(fy))
        # how far the point is from the sides of its own cell: ring k covers k cells more than that
        margin = min(fx - cx, cx + 1 - fx, fy - cy, cy + 1 - fy) * cell_m - 1e-6 * cell_m
        best = INF
        k = 0
        while True:
            for c in range(_ring(cx, cy, k, nx, ny, cells)):
                for j in range(cell_start[cells[c]], cell_start[cells[c] + 1]):
                    a = seg_start[cell_seg[j]]
                    best = min(best, _segment_distance(px[i], py[i], x[a], y[a], x[a + 1], y[a + 1]))
            covered = k * cell_m + margin
            if best + near_m <= covered or covered > reach:
                break
            k += 1
        if best > max_m + near_m:
            continue
        first = nc
        for r in range(k + 1):
            for c in range(_ring(cx, cy, r, nx, ny, cells)):
                for j in range(cell_start[cells[c]], cell_start[cells[c] + 1]):
                    s = cell_seg[j]
                    a = seg_start[s]
                    if _segment_distance(px[i], py[i], x[a], y[a], x[a + 1], y[a + 1]) > best + near_m:
                        continue
                    seen = False
                    for m in range(first, nc):
                        seen = seen or c_edge[m] == seg_edge[s]
                    if not seen and nc - first == 4:
                        status[i] = SNAP_TREE
                    elif not seen:
                        c_pt[nc] = i
                        c_edge[nc] = seg_edge[s]
                        nc += 1
        if status[i] == SNAP_TREE:
            nc = first
        elif nc - first == 1 and best < max_m - near_m:
            status[i] = SNAP_ONE
        else:
            status[i] = SNAP_MEASURE
    return status, c_pt[:nc], c_edge[:nc]


@njit(cache=True)
def pick_nearest(status, c_pt, c_edge, exact, max_m, tie_m):
    """Each point's nearest edge within ``max_m`` (-1 where none) from ``nearest_edges``' answer and the exact
    distances of the SNAP_MEASURE candidates (``exact``, any value for the others); and whether that is
    settled, which it is not where the grid left the point to the tree, where two edges tie (within
    ``tie_m``) or where the nearest lies within ``tie_m`` of ``max_m``."""
    n = status.shape[0]
    best_e = np.full(n, -1, dtype=np.int64)
    best_d = np.full(n, INF)
    ties = np.zeros(n, dtype=np.int64)
    for j in range(c_pt.shape[0]):
        i = c_pt[j]
        if status[i] == SNAP_ONE:
            best_e[i] = c_edge[j]
            continue
        # ties counts the candidates within tie_m of the least distance so far (never fewer than at the end)
        if exact[j] < best_d[i] - tie_m:
            ties[i] = 0
        if exact[j] <= best_d[i] + tie_m:
            ties[i] += 1
        if exact[j] < best_d[i]:
            best_d[i] = exact[j]
            best_e[i] = c_edge[j]
    settled = (status == SNAP_NONE) | (status == SNAP_ONE)
    for i in range(n):
        if status[i] == SNAP_MEASURE:
            settled[i] = ties[i] == 1 and abs(best_d[i] - max_m) > tie_m
            if not settled[i] or best_d[i] > max_m:
                best_e[i] = -1
    return best_e, settled


@njit(cache=True)
def tree(indptr, indices, w, source, dist, pred, hk, hv):
    """Plain Dijkstra from ``source`` over a CSR graph (``indptr``, ``indices``, weights ``w``): fills ``dist``
    (inf where not reached) and ``pred`` (-1 at the source and where not reached). ``hk``, ``hv`` are heap rows
    with room for one entry per arc plus one (stale entries are skipped when popped)."""
    dist[:] = INF
    pred[:] = -1
    dist[source] = 0.0
    size = 1
    hk[0] = 0.0
    hv[0] = source
    while size > 0:
        d, v, size = _pop(hk, hv, size)
        if d > dist[v]:
            continue
        for k in range(indptr[v], indptr[v + 1]):
            u = indices[k]
            nd = d + w[k]
            if nd < dist[u]:
                dist[u] = nd
                pred[u] = v
                _sift_up(hk, hv, size, nd, u)
                size += 1
