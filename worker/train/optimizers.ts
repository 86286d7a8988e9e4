import type * as tfc from '@tensorflow/tfjs-core';

/**
 * The four SageMaker optimizers with MXNet's update rules (the lineage of SageMaker's built-in
 * object detection), written over named variables so their state can be checkpointed and so that
 * every worker applies the same summed gradient in the same way.
 *
 * - sgd:      mom = momentum * mom - lr * (g + wd * w);  w += mom
 * - adam:     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
 * - rmsprop:  n = g1 n + (1 - g1) (g + wd w)^2;  w -= lr (g + wd w) / sqrt(n + eps)
 * - adadelta: a = rho a + (1 - rho) g^2;  d = sqrt(s + eps) / sqrt(a + eps) * g;  s = rho s + (1 - rho) d^2;  w -= d
 *   (MXNet's AdaDelta does not use the learning rate.)
 * SageMaker applies weight_decay for sgd and rmsprop only; adam and adadelta ignore it.
 */
export type OptimizerName = 'sgd' | 'adam' | 'rmsprop' | 'adadelta';

export interface OptimizerOptions {
  optimizer: OptimizerName;
  momentum: number;
  weight_decay: number;
}

/** Checkpointable optimizer state: slot arrays by `${variable}/${slot}` plus the update count. */
export interface OptimizerState {
  name: OptimizerName;
  updates: number;
  slots: Map<string, { shape: number[]; values: Float32Array }>;
}

export interface Optimizer {
  readonly name: OptimizerName;
  /** Applies one update. `grads` holds a gradient per trainable variable name; it is not disposed. */
  apply(
    grads: ReadonlyMap<string, tfc.Tensor>,
    variables: ReadonlyMap<string, tfc.Variable>,
    lr: number,
  ): void;
  getState(): Promise<OptimizerState>;
  setState(state: OptimizerState): void;
  /** Updates applied so far (getState's `updates`). */
  readonly updates: number;
  /** The live slot variables by `${variable}/${slot}`, to read without a copy; not to be disposed. */
  slotVariables(): ReadonlyMap<string, tfc.Variable>;
  dispose(): void;
}

const SLOTS: Record<OptimizerName, readonly string[]> = {
  sgd: ['momentum'],
  adam: ['mean', 'variance'],
  rmsprop: ['n'],
  adadelta: ['acc_g', 'acc_delta'],
};

export function createOptimizer(tf: typeof tfc, options: OptimizerOptions): Optimizer {
  const { optimizer: name, momentum, weight_decay: wd } = options;
  const slots = new Map<string, tfc.Variable>();
  let updates = 0;

  const slot = (varName: string, slotName: string, like: tfc.Tensor): tfc.Variable => {
    const key = `${varName}/${slotName}`;
    let v = slots.get(key);
    if (!v) {
      v = tf.variable(tf.zerosLike(like), false);
      slots.set(key, v);
    }
    return v;
  };

  const update = (varName: string, w: tfc.Variable, g: tfc.Tensor, lr: number) => {
    switch (name) {
      case 'sgd': {
        const mom = slot(varName, 'momentum', w);
        const next = tf.sub(tf.mul(mom, momentum), tf.mul(tf.add(g, tf.mul(w, wd)), lr));
        mom.assign(next);
        w.assign(tf.add(w, next));
        return;
      }
      case 'adam': {
        const [b1, b2, eps] = [0.9, 0.999, 1e-8];
        const m = slot(varName, 'mean', w);
        const v = slot(varName, 'variance', w);
        m.assign(tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1)));
        v.assign(tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2)));
        const t = updates + 1;
        const lrT = (lr * Math.sqrt(1 - b2 ** t)) / (1 - b1 ** t);
        w.assign(tf.sub(w, tf.mul(tf.div(m, tf.add(tf.sqrt(v), eps)), lrT)));
        return;
      }
      case 'rmsprop': {
        const [gamma, eps] = [0.9, 1e-8];
        const n = slot(varName, 'n', w);
        const gw = tf.add(g, tf.mul(w, wd));
        n.assign(tf.add(tf.mul(n, gamma), tf.mul(tf.square(gw), 1 - gamma)));
        w.assign(tf.sub(w, tf.mul(tf.div(gw, tf.sqrt(tf.add(n, eps))), lr)));
        return;
      }
      case 'adadelta': {
        const [rho, eps] = [0.9, 1e-5];
        const accG = slot(varName, 'acc_g', w);
        const accD = slot(varName, 'acc_delta', w);
        accG.assign(tf.add(tf.mul(accG, rho), tf.mul(tf.square(g), 1 - rho)));
        const delta = tf.mul(tf.div(tf.sqrt(tf.add(accD, eps)), tf.sqrt(tf.add(accG, eps))), g);
        accD.assign(tf.add(tf.mul(accD, rho), tf.mul(tf.square(delta), 1 - rho)));
        w.assign(tf.sub(w, delta));
        return;
      }
    }
  };

  return {
    name,
    get updates() {
      return updates;
    },
    slotVariables: () => slots,
    apply(grads, variables, lr) {
      tf.tidy(() => {
        for (const [varName, g] of grads) {
          const w = variables.get(varName);
          if (!w) throw new Error(`optimizer: gradient for unknown variable '${varName}'`);
          update(varName, w, g, lr);
        }
      });
      updates += 1;
    },
    async getState() {
      const out: OptimizerState['slots'] = new Map();
      for (const [key, v] of [...slots].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        out.set(key, { shape: [...v.shape], values: (await v.data()) as Float32Array });
      }
      return { name, updates, slots: out };
    },
    setState(state) {
      if (state.name !== name)
        throw new Error(`optimizer: state is for '${state.name}', this optimizer is '${name}'`);
      for (const v of slots.values()) v.dispose();
      slots.clear();
      for (const [key, { shape, values }] of state.slots) {
        const slotName = key.slice(key.lastIndexOf('/') + 1);
        if (!SLOTS[name].includes(slotName))
          throw new Error(`optimizer: unexpected slot '${key}' for ${name}`);
        const initial = tf.tensor(values, shape, 'float32');
        slots.set(key, tf.variable(initial, false));
        initial.dispose();
      }
      updates = state.updates;
    },
    dispose() {
      for (const v of slots.values()) v.dispose();
      slots.clear();
    },
  };
}
