"""Float64 NumPy oracles of what the library computes (written from the definitions in
docs/api.md, not from the kernels)."""

import numpy as np


def visible(mask, lq, lk, window_left=-1, window_right=-1):
    """bool [lq, lk]: key j visible to query i under a MaskKind name."""
    i = np.arange(lq)[:, None]
    j = np.arange(lk)[None, :]
    if mask == "none":
        return np.ones((lq, lk), dtype=bool)
    if mask == "causal":
        return j <= i + lk - lq
    if mask == "causal_top_left":
        return j <= i
    if mask == "sliding_window":
        ip = i + lk - lq
        ok = np.ones((lq, lk), dtype=bool)
        if window_left >= 0:
            ok &= j >= ip - window_left
        if window_right >= 0:
            ok &= j <= ip + window_right
        return ok
    raise ValueError(mask)


def attention(q, k, v, mask="none", scale=None, softcap=0.0, window_left=-1, window_right=-1,
              additive=None, key_lengths=None):
    """q [B, Lq, Hq, D], k/v [B, Lk, Hkv, D] -> (out [B, Lq, Hq, D], lse [B, Hq, Lq],
    weights [B, Hq, Lq, Lk]); rows that see no key give 0 and lse -inf."""
    q = q.astype(np.float64)
    k = k.astype(np.float64)
    v = v.astype(np.float64)
    b, lq, hq, d = q.shape
    lk, hkv = k.shape[1], k.shape[2]
    g = hq // hkv
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    kk = np.repeat(k, g, axis=2)  # head h reads KV head h // g
    vv = np.repeat(v, g, axis=2)
    s = np.einsum("bqhd,bkhd->bhqk", q, kk) * scale
    if softcap > 0:
        s = softcap * np.tanh(s / softcap)
    ok = np.broadcast_to(visible(mask, lq, lk, window_left, window_right), s.shape).copy()
    if additive is not None:
        s = s + np.broadcast_to(additive.astype(np.float64), s.shape)
        ok &= np.broadcast_to(additive, s.shape) != -np.inf
    if key_lengths is not None:
        for bi in range(b):
            ok[bi, :, :, key_lengths[bi]:] = False
    s = np.where(ok, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    p = np.where(ok, np.exp(s - m_safe), 0.0)
    z = p.sum(axis=-1, keepdims=True)
    w = np.where(z > 0, p / np.where(z > 0, z, 1.0), 0.0)
    out = np.einsum("bhqk,bkhd->bqhd", w, vv)
    lse = np.where(z[..., 0] > 0, np.log(np.where(z[..., 0] > 0, z[..., 0], 1.0)) + m_safe[..., 0], -np.inf)
    return out, lse, w


def varlen_attention(q, k, v, cu_q, cu_k, mask="none", scale=None):
    """Packed q [Tq, Hq, D], k/v [Tk, Hkv, D] with cu_seqlens -> (out [Tq, Hq, D], lse [Hq, Tq])."""
    out = np.zeros(q.shape, dtype=np.float64)
    lse = np.full((q.shape[1], q.shape[0]), -np.inf)
    for s in range(len(cu_q) - 1):
        a, e = cu_q[s], cu_q[s + 1]
        ka, ke = cu_k[s], cu_k[s + 1]
        if e == a:
            continue
        o, l, _ = attention(q[None, a:e], k[None, ka:ke], v[None, ka:ke], mask=mask, scale=scale)
        out[a:e] = o[0]
        lse[:, a:e] = l[0]
    return out, lse


def elu1(x):
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))


def linear_attention(q, k, v, causal, eps=1e-6):
    """elu+1 linear attention, [B, L, H, D] with GQA."""
    q = q.astype(np.float64)
    k = k.astype(np.float64)
    v = v.astype(np.float64)
    g = q.shape[2] // k.shape[2]
    fq = elu1(q)
    fk = np.repeat(elu1(k), g, axis=2)
    vv = np.repeat(v, g, axis=2)
    a = np.einsum("bqhf,bkhf->bhqk", fq, fk)
    if causal:
        a = a * np.tril(np.ones(a.shape[-2:]))
    num = np.einsum("bhqk,bkhd->bqhd", a, vv)
    den = a.sum(-1).transpose(0, 2, 1)[..., None]
    return num / (den + eps)


def rotate_neox(x, cos, sin):
    """x [..., D], cos/sin [..., D/2] broadcastable (the first rotary dims rotate)."""
    half = cos.shape[-1]
    x1 = x[..., :half]
    x2 = x[..., half:2 * half]
    out = x.astype(np.float64).copy()
    out[..., :half] = x1 * cos - x2 * sin
    out[..., half:2 * half] = x2 * cos + x1 * sin
    return out


def rotate_gptj(x, cos, sin):
    x1 = x[..., 0::2][..., :cos.shape[-1]]
    x2 = x[..., 1::2][..., :cos.shape[-1]]
    out = x.astype(np.float64).copy()
    n = cos.shape[-1]
    out[..., 0:2 * n:2] = x1 * cos - x2 * sin
    out[..., 1:2 * n:2] = x2 * cos + x1 * sin
    return out


def inv_freq(theta, dim):
    return 1.0 / theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim)


def mrope_axis(section, half):
    """Qwen3-VL's interleaved M-RoPE: slot i reads axis 1 (h) if i % 3 == 1 and i < 3 * h,
    axis 2 (w) if i % 3 == 2 and i < 3 * w, else axis 0 (t)."""
    t, h, w = section
    axis = np.zeros(half, dtype=np.int64)
    for i in range(half):
        if i % 3 == 1 and i < 3 * h:
            axis[i] = 1
        elif i % 3 == 2 and i < 3 * w:
            axis[i] = 2
    return axis


def rms_norm(x, w, eps):
    x = x.astype(np.float64)
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def text_layer(hidden, wq, wk, wv, wo, qn, kn, positions, hq, hkv, d, theta, section, eps=1e-6,
               past_k=None, past_v=None):
    """Qwen3-VL text attention for hidden [B, L, hidden] with M-RoPE positions [3, B, L];
    returns (out, k_rot, v) so a caller can keep its own cache (past_k/v [B, P, Hkv, D])."""
    b, l, _ = hidden.shape
    h = hidden.astype(np.float64)
    q = (h @ wq.T.astype(np.float64)).reshape(b, l, hq, d)
    k = (h @ wk.T.astype(np.float64)).reshape(b, l, hkv, d)
    v = (h @ wv.T.astype(np.float64)).reshape(b, l, hkv, d)
    q = rms_norm(q, qn, eps)
    k = rms_norm(k, kn, eps)
    inv = inv_freq(theta, d)
    axis = mrope_axis(section, d // 2)
    pos = positions.astype(np.float64)  # [3, B, L]
    ang = np.stack([pos[axis[i]] * inv[i] for i in range(d // 2)], axis=-1)  # [B, L, D/2]
    cos = np.cos(ang)[:, :, None, :]
    sin = np.sin(ang)[:, :, None, :]
    q = rotate_neox(q, cos, sin)
    k = rotate_neox(k, cos, sin)
    if past_k is not None:
        k = np.concatenate([past_k, k], axis=1)
        v = np.concatenate([past_v, v], axis=1)
    o, _, _ = attention(q, k, v, mask="causal")
    return o.reshape(b, l, hq * d) @ wo.T.astype(np.float64), k, v


def vision_layer(hidden, qkv_w, qkv_b, proj_w, proj_b, positions, cu, heads, theta=10000.0):
    """Qwen3-VL vision attention: hidden [N, C], positions [2, N] (row, col), cu [frames + 1]."""
    n, c = hidden.shape
    d = c // heads
    h = hidden.astype(np.float64)
    qkv = h @ qkv_w.T.astype(np.float64) + qkv_b
    q, k, v = (qkv[:, i * c:(i + 1) * c].reshape(n, heads, d) for i in range(3))
    inv = inv_freq(theta, d // 2)  # D/4 frequencies
    ang = np.concatenate([positions[0][:, None] * inv, positions[1][:, None] * inv], axis=-1)
    cos = np.cos(ang)[:, None, :]
    sin = np.sin(ang)[:, None, :]
    q = rotate_neox(q, cos, sin)
    k = rotate_neox(k, cos, sin)
    o, _ = varlen_attention(q, k, v, cu, cu)
    return o.reshape(n, c) @ proj_w.T.astype(np.float64) + proj_b


def decode(q, k_rows, v_rows, lengths):
    """q [B, R, Hq, D] new rows against each sequence's first lengths[b] cached rows
    (k_rows/v_rows [B, maxlen, Hkv, D]); row r sees keys j <= len - R + r."""
    b, r = q.shape[:2]
    out = np.zeros(q.shape)
    for bi in range(b):
        L = lengths[bi]
        o, _, _ = attention(q[bi:bi + 1], k_rows[bi:bi + 1, :L], v_rows[bi:bi + 1, :L], mask="causal")
        out[bi] = o[0]
    return out
