"""The MDN's sampling engine: a trained mixture density network run step by step in numpy.

``MDNPropagator.sample`` hands its trained network to :class:`MixtureSampler`, which holds it
as float32 numpy matrices and runs the steps on preallocated buffers, with noise drawn in
blocks beforehand by :func:`gumbel_and_normal`; the walls of the training box come from
:class:`sklss._propagation.BoxWalls`.
"""

import numpy as np

from ._propagation import BoxWalls, layer_buffers, numpy_layers


def gumbel_and_normal(rng, n_steps, n_starts, n_kernels, n_features):
    """Pre-drawn noise for ``n_steps`` steps: Gumbel keys pick the kernel, normals its value.

    ``argmax(log w_k + g_k)`` with standard Gumbel ``g_k`` draws kernel ``k`` with probability
    ``w_k`` (the Gumbel-max trick), so no softmax or cumulative sum is needed per step.
    """
    g = rng.random((n_steps, n_starts, n_kernels), dtype=np.float32)
    with np.errstate(divide="ignore"):
        # u = 0 gives a key of -inf: that kernel is not picked, which is the right limit.
        np.log(g, out=g)
        np.negative(g, out=g)
        np.log(g, out=g)
    np.negative(g, out=g)
    z = rng.standard_normal((n_steps, n_starts, n_features), dtype=np.float32)
    return g, z


class MixtureSampler(BoxWalls):
    """The trained network as float32 numpy arrays, and the per-step sampling loops.

    One step costs a handful of numpy calls on preallocated buffers, without framework
    dispatch. The kernel is picked from the mixture logits first; then only the picked
    kernel's means and widths are computed. Biases ride along as an extra input column that is
    always 1, which saves one call per layer.

    The box ``[lo, hi]`` (scaled units) is enforced by reject-and-stay: a trajectory whose new
    draw leaves the box in any feature, or is not finite, keeps its current state for that
    step. Only when a trajectory starts outside the box is a rejected draw clipped into it
    instead, so that no trajectory stays outside. A feature with a zero-width box (constant in
    the training data) is pinned to its value: its mean is set to the wall and its noise to
    zero, so it never causes a rejection. ``n_wall_hits`` counts the rejected draws.
    """

    def __init__(self, module, lo, hi):
        super().__init__(lo, hi)
        C, m = module.n_kernels, module.n_features
        self.n_kernels, self.n_features = C, m
        self.floor = np.full(m, module.sigma_floor, dtype=np.float32)
        self.hidden, W_out = numpy_layers(module.mlp, module.activation)
        self.W_logits = np.ascontiguousarray(W_out[:C])
        W_kernels = W_out[C:].reshape(C, 2 * m, -1).copy()
        if len(self.pinned):
            # The mean of a pinned feature is exactly its wall value: 0 * h + lo * 1.
            W_kernels[:, self.pinned, :] = 0
            W_kernels[:, self.pinned, -1] = self.lo[self.pinned]
        self.W_kernels = np.ascontiguousarray(W_kernels)

    def numbers_per_step(self, n_starts):
        return n_starts * (self.n_kernels + self.n_features)

    def draw(self, rng, n_steps, n_starts):
        return gumbel_and_normal(rng, n_steps, n_starts, self.n_kernels, self.n_features)

    def run(self, state, gumbel, normal):
        """Advance ``state`` (``(n_starts, m)`` scaled float32, updated in place) by
        ``len(gumbel)`` steps; return the visited states, ``(n_steps, n_starts, m)``.

        ``normal`` may be modified (the noise of pinned features is zeroed).
        """
        if len(self.pinned):
            normal[..., self.pinned] = 0
        start_inside = self.start_inside(state)
        if state.shape[0] == 1:
            return self._run_one(state, gumbel[:, 0], normal[:, 0], start_inside)[:, None, :]
        return self._run_batch(state, gumbel, normal, start_inside)

    def _run_one(self, state, gumbel, normal, start_inside):
        m = self.n_features
        inputs = [np.ones(m + 1, dtype=np.float32)]
        layers = []
        for Wb, act, _ in self.hidden:
            out = np.ones(Wb.shape[0] + 1, dtype=np.float32)
            layers.append((Wb, inputs[-1], out[:-1], act))
            inputs.append(out)
        W_logits, W_kernels = self.W_logits, self.W_kernels
        h = inputs[-1]
        x = inputs[0][:m]
        x[:] = state[0]
        logits = np.empty(self.n_kernels, dtype=np.float32)
        params = np.empty(2 * m, dtype=np.float32)
        mean, raw = params[:m], params[m:]
        sigma = np.empty(m, dtype=np.float32)
        floor = self.floor
        bounds = list(zip(self.lo.tolist(), self.hi.tolist()))
        previous = state[0].copy()
        clip_next = start_inside is not None
        hits = 0
        visited = np.empty((len(gumbel), m), dtype=np.float32)
        dot, add, multiply, logaddexp = np.dot, np.add, np.multiply, np.logaddexp
        for t in range(len(gumbel)):
            for Wb, src, dst, act in layers:
                dot(Wb, src, out=dst)
                act(dst)
            dot(W_logits, h, out=logits)
            add(logits, gumbel[t], out=logits)
            dot(W_kernels[logits.argmax()], h, out=params)
            logaddexp(raw, floor, out=sigma)
            multiply(sigma, normal[t], out=x)
            add(x, mean, out=x)
            for v, (a, c) in zip(x.tolist(), bounds):
                if not a <= v <= c:  # also true for NaN
                    hits += 1
                    x[:] = self._into_box(x) if clip_next else previous
                    break
            clip_next = False
            visited[t] = x
            previous = visited[t]
        state[0] = x
        self.n_wall_hits += hits
        return visited

    def _run_batch(self, state, gumbel, normal, start_inside):
        m = self.n_features
        B = state.shape[0]
        inputs, layers = layer_buffers(self.hidden, B, m)
        W_logits_T, W_kernels = np.ascontiguousarray(self.W_logits.T), self.W_kernels
        h = inputs[-1]
        h_column = h[:, :, None]
        x = inputs[0][:, :m]
        x[...] = state
        logits = np.empty((B, self.n_kernels), dtype=np.float32)
        params = np.empty((B, 2 * m, 1), dtype=np.float32)
        mean, raw = params[:, :m, 0], params[:, m:, 0]
        sigma = np.empty((B, m), dtype=np.float32)
        floor = self.floor
        previous = state.copy()
        hits = 0
        visited = np.empty((len(gumbel), B, m), dtype=np.float32)
        matmul, add, multiply, logaddexp = np.matmul, np.add, np.multiply, np.logaddexp
        for t in range(len(gumbel)):
            for WbT, src, dst, act, target in layers:
                matmul(src, WbT, out=dst)
                act(target)
            matmul(h, W_logits_T, out=logits)
            add(logits, gumbel[t], out=logits)
            matmul(W_kernels[logits.argmax(axis=1)], h_column, out=params)
            logaddexp(raw, floor, out=sigma)
            multiply(sigma, normal[t], out=x)
            add(x, mean, out=x)
            hits += self.enforce(x, previous, start_inside)
            start_inside = None
            visited[t] = x
            previous = visited[t]
        state[...] = x
        self.n_wall_hits += hits
        return visited
