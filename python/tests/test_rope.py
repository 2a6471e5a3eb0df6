"""RoPE / M-RoPE tables, cos/sin, the CPU applier, get_rope_index and vision positions against
float64 NumPy."""

import numpy as np
import pytest

import qwen3vl_attention as qa
import oracle

RNG = np.random.default_rng(3)


def rand(*shape, dtype=np.float32):
    return RNG.uniform(-1, 1, size=shape).astype(dtype)


def test_frequencies():
    inv, factor = qa.compute_frequencies(qa.RopeConfig(head_dim=40, theta=1e4), 0)
    assert inv.dtype == np.float32 and inv.shape == (20,) and factor == 1.0
    np.testing.assert_allclose(inv, oracle.inv_freq(1e4, 40), rtol=2e-6)
    sc = qa.RopeScaling()
    sc.type = qa.RopeScalingType.linear
    sc.factor = 4.0
    inv4, _ = qa.compute_frequencies(qa.RopeConfig(head_dim=40, theta=1e4, scaling=sc), 0)
    np.testing.assert_allclose(inv4, inv / 4, rtol=2e-6)


@pytest.mark.parametrize("layout", [qa.TableLayout.full, qa.TableLayout.split])
def test_text_table_cos_sin(layout):
    cfg = qa.RopeConfig(head_dim=30, theta=5e5)
    table = qa.RopeTable.text(cfg, layout=qa.MRopeLayout.none, max_position=300,
                              table_layout=layout)
    assert table.half == 15 and table.axes == 1 and table.max_position == 300
    pos = RNG.integers(0, 300, size=17).astype(np.int32)
    cos = np.zeros((17, 15), np.float32)
    sin = np.zeros((17, 15), np.float32)
    qa.rope_cos_sin(table, pos, cos, sin)
    ang = pos[:, None].astype(np.float64) * table.inv_freq.astype(np.float64)
    np.testing.assert_allclose(cos, np.cos(ang), atol=1e-6)
    np.testing.assert_allclose(sin, np.sin(ang), atol=1e-6)


def test_mrope_interleaved_cos_sin():
    cfg = qa.RopeConfig(head_dim=32, theta=5e6)
    table = qa.RopeTable.text(cfg, layout=qa.MRopeLayout.interleaved, section=(6, 5, 5),
                              max_position=4096)
    np.testing.assert_array_equal(table.axis, oracle.mrope_axis((6, 5, 5), 16))
    pos = RNG.integers(0, 4096, size=(3, 11)).astype(np.int32)
    cos = np.zeros((11, 16), np.float32)
    sin = np.zeros((11, 16), np.float32)
    qa.rope_cos_sin(table, pos, cos, sin)
    axis = oracle.mrope_axis((6, 5, 5), 16)
    ang = np.stack([pos[axis[i]] * np.float64(table.inv_freq[i]) for i in range(16)], axis=-1)
    np.testing.assert_allclose(cos, np.cos(ang), atol=1e-6)
    with pytest.raises(qa.InvalidArgumentError, match="mrope_section"):
        qa.RopeTable.text(cfg, section=(6, 5, 6))


@pytest.mark.parametrize("style", [qa.RopeStyle.neox, qa.RopeStyle.gptj])
@pytest.mark.parametrize("packed", [False, True])
def test_apply(style, packed):
    d, rot = 24, 16
    table = qa.RopeTable.text(qa.RopeConfig(head_dim=d, rotary_dim=rot, theta=1e4),
                              layout=qa.MRopeLayout.none, max_position=128,
                              table_layout=qa.TableLayout.full)
    shape = (13,) if packed else (2, 7)
    q = rand(*shape, 5, d)
    k = rand(*shape, 3, d)
    pos = RNG.integers(0, 128, size=shape).astype(np.int32)
    q0, k0 = q.copy(), k.copy()
    qa.RopeApplier.cpu().apply(q, k, pos, table, style=style)
    ang = pos[..., None, None].astype(np.float64) * table.inv_freq.astype(np.float64)
    rotate = oracle.rotate_neox if style == qa.RopeStyle.neox else oracle.rotate_gptj
    np.testing.assert_allclose(q, rotate(q0, np.cos(ang), np.sin(ang)), atol=2e-6)
    np.testing.assert_allclose(k, rotate(k0, np.cos(ang), np.sin(ang)), atol=2e-6)
    # q alone (k None); positions past the table are a typed error before any write
    qa.RopeApplier.cpu().apply(q0, None, pos, table, style=style)
    bad = pos.copy()
    bad.flat[3] = 128
    before = q0.copy()
    with pytest.raises(qa.InvalidArgumentError, match="positions"):
        qa.RopeApplier.cpu().apply(q0, None, bad, table)
    np.testing.assert_array_equal(q0, before)


def test_get_rope_index_image():
    types = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0], np.int32)
    pos, delta = qa.get_rope_index(types, image_grid_thw=[(1, 4, 6)])
    assert pos.shape == (3, 1, 11) and delta.tolist() == [-3]
    np.testing.assert_array_equal(pos[0, 0], [0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 7])
    np.testing.assert_array_equal(pos[1, 0], [0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 7])
    np.testing.assert_array_equal(pos[2, 0], [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7])
    # Batch of two with left padding on the second: padded slots take pad_position.
    types2 = np.stack([types, np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1], np.int32)])
    mask = np.ones((2, 11), np.int32)
    mask[1, :2] = 0
    pos2, delta2 = qa.get_rope_index(types2, image_grid_thw=[(1, 4, 6), (1, 4, 6)],
                                     attention_mask=mask)
    np.testing.assert_array_equal(pos2[:, 0], pos[:, 0])
    np.testing.assert_array_equal(pos2[0, 1], [0, 0, 0, 1, 2, 3, 3, 3, 3, 3, 3])
    assert delta2.tolist() == [-3, -3]  # max position + 1 - kept tokens
    tt = qa.token_types_from_ids(np.array([5, 9, 9, 7]), image_token_id=9, video_token_id=7)
    assert tt.tolist() == [0, 1, 1, 2]
    with pytest.raises(qa.InvalidArgumentError, match="image_grid_thw"):
        qa.get_rope_index(types, image_grid_thw=[(1, 3, 6)])


def test_vision_positions():
    grids = [(2, 4, 6), (1, 2, 2)]
    pos = qa.vision_positions(grids, 2)
    n = qa.vision_patches(grids)
    assert n == 2 * 24 + 4 and pos.shape == (2, n)
    want = []
    for t, h, w in grids:
        for _ in range(t):
            for br in range(h // 2):
                for bc in range(w // 2):
                    for ir in range(2):
                        for ic in range(2):
                            want.append((br * 2 + ir, bc * 2 + ic))
    np.testing.assert_array_equal(pos.T, np.array(want))


def test_vision_table_cos_sin():
    table = qa.RopeTable.vision(16, theta=1e4, max_side=64)
    assert table.half == 8 and table.axes == 2
    pos = qa.vision_positions([(1, 4, 6)], 2)
    cos = np.zeros((24, 8), np.float32)
    sin = np.zeros((24, 8), np.float32)
    qa.rope_cos_sin(table, pos, cos, sin)
    inv = oracle.inv_freq(1e4, 8)  # D / 4 frequencies: rows, then columns
    ang = np.concatenate([pos[0][:, None] * inv, pos[1][:, None] * inv], axis=-1)
    np.testing.assert_allclose(cos, np.cos(ang), atol=1e-6)
    np.testing.assert_allclose(sin, np.sin(ang), atol=1e-6)
    with pytest.raises(qa.ShapeMismatchError, match="positions"):
        qa.rope_cos_sin(table, pos[:1], cos, sin)
