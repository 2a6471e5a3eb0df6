"""How the PyTorch peers of the CUDA benches time F.scaled_dot_product_attention: every SDPA backend
PyTorch has, each forced through torch.nn.attention.sdpa_kernel (the default: no restriction), a
backend that refuses the shape recorded with PyTorch's reason, and two timing methods that match
the C++ benches:
  events_ms: calls launched back to back outside any graph, an event before and after each group;
             the median over groups of the time per call (qwen3vl-attn-bench cuda-prefill: groups of one call;
             qwen3vl-attn-bench decode: groups of 20).
  graph_ms:  the same calls captured into a CUDA graph, its replays timed between events.
Imported by scripts/gpu/sdpa_bench.py and bench/kv_cache/sdpa_decode.py."""
import contextlib
import statistics
import warnings

import torch

# The backends in the order they are tried; None is PyTorch's own choice.
BACKEND_NAMES = ["default", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH"]


def backend_context(name):
    """A context that restricts SDPA to one backend (nothing for "default"); None if this PyTorch
    has no such backend."""
    if name == "default":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel
    backend = getattr(SDPBackend, name, None)
    return sdpa_kernel(backend) if backend is not None else None


def try_backend(name, fn):
    """Runs fn() once under the backend. Returns None when it ran, else why not (PyTorch's
    warnings and error, shortened)."""
    ctx = backend_context(name)
    if ctx is None:
        return f"torch {torch.__version__} has no SDPBackend.{name}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with ctx:
                fn()
            torch.cuda.synchronize()
            return None
        except (RuntimeError, ValueError, NotImplementedError) as e:
            torch.cuda.synchronize()
            reasons = [str(w.message).splitlines()[0] for w in caught]
            reasons.append(str(e).splitlines()[0] if str(e) else type(e).__name__)
            return "; ".join(dict.fromkeys(r.strip() for r in reasons if r.strip()))[:400]


def events_ms(fn, per_sample=1, reps=10, warmup=3):
    """Median milliseconds per call of fn(i) (i counts calls), per_sample calls between two events,
    reps samples after warmup untimed calls; launched outside any graph."""
    calls = 0
    for _ in range(warmup):
        fn(calls)
        calls += 1
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(per_sample):
            fn(calls)
            calls += 1
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / per_sample)
    return statistics.median(times)


def graph_ms(fn, per_graph=20, reps=20, warmup=3):
    """Median milliseconds per call of fn(i) from a CUDA graph of per_graph calls (fn(0) ..
    fn(per_graph - 1)), reps replays after one untimed replay."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for i in range(warmup):
            fn(i)  # outside the graph: kernel selection, workspaces
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        for i in range(per_graph):
            fn(i)
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / per_graph)
    del graph
    return statistics.median(times)


def time_backend(name, fn, method, **kw):
    """(ms, None) for fn(i) under the backend timed by `method` ("events" or "graph", with kw for
    events_ms / graph_ms), or (None, why) if the backend refuses the call or its capture. The
    backend context is entered once around the whole timing, not per call."""
    why = try_backend(name, lambda: fn(0))
    if why:
        return None, why
    try:
        with backend_context(name):
            ms = events_ms(fn, **kw) if method == "events" else graph_ms(fn, **kw)
        return ms, None
    except (RuntimeError, ValueError, NotImplementedError) as e:
        torch.cuda.synchronize()
        return None, f"{method}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"[:400]


def fastest(results):
    """The (backend, ms) of the smallest time in {backend: ms or None}; (None, None) if none ran."""
    ran = [(ms, name) for name, ms in results.items() if ms is not None]
    if not ran:
        return None, None
    ms, name = min(ran)
    return name, ms


def copy_gbps(method, gib=1):
    """Device-to-device copy bandwidth (bytes read + written per second, GB/s) of a buffer of
    `gib` GiB, timed by `method` ("events": 4 back-to-back copies a sample, 10 samples; "graph":
    graphs of 4 copies, 10 replays), as qwen3vl-attn-bench decode times its copy kernel
    (here torch's copy_, which a graph captures as a memcpy node)."""
    src = torch.ones(gib << 28, device="cuda", dtype=torch.float32)
    dst = torch.empty_like(src)
    fn = lambda i: dst.copy_(src)  # noqa: E731
    ms = events_ms(fn, 4, 10, 1) if method == "events" else graph_ms(fn, 4, 10, 1)
    del src, dst
    return 2 * (gib << 30) / (ms * 1e6)
