import test from 'ava';
import type { BaseNetwork } from '../../../../worker/model/anchors.js';
import { sizeOf } from '../../../../worker/model/backbones/layers.js';
import { describeSsd, type SsdParamSpec, trainableNames } from '../../../../worker/model/ssd.js';

/**
 * Which resnet-50 base BatchNorm terms train, and how they start, with and without a pretrained base
 * (pure: shape pass only). The training effect is in resnet50-from-scratch.test.ts.
 */
function resnet(pretrainedBase: boolean | undefined) {
  return describeSsd({ baseNetwork: 'resnet-50', imageShape: 512, numClasses: 20, pretrainedBase });
}

const AFFINE = new Set(['gamma', 'beta']);
const STATISTICS = new Set(['moving_mean', 'moving_variance']);
const isBatchNorm = (p: SsdParamSpec) => AFFINE.has(p.role) || STATISTICS.has(p.role);
const baseBatchNorms = (params: readonly SsdParamSpec[]) =>
  params.filter((p) => p.part === 'base' && isBatchNorm(p));
/** The value a constant-initialised parameter starts at. */
const constantOf = (p: SsdParamSpec) => (p.init.kind === 'constant' ? p.init.value : Number.NaN);

test('from scratch, every resnet-50 base BatchNorm trains gamma and beta and keeps its statistics fixed', (t) => {
  const d = resnet(false);
  const norms = baseBatchNorms(d.params);
  // bn0, three per bottleneck (16 units) and one per projection shortcut (4 stages).
  t.is(new Set(norms.map((p) => p.layer)).size, 1 + 3 * 16 + 4);
  for (const p of norms) t.is(p.trainable, AFFINE.has(p.role), p.name);
  t.deepEqual(
    d.params.filter((p) => !p.trainable).map((p) => p.name),
    d.params.filter((p) => STATISTICS.has(p.role)).map((p) => p.name),
    'only BatchNorm statistics are left out of training',
  );
  const statistics = d.params.filter((p) => STATISTICS.has(p.role));
  t.is(d.trainableParameterCount, d.parameterCount - statistics.reduce((n, p) => n + sizeOf(p.shape), 0));
  t.false(d.pretrainedBase);
});

test('from scratch, each residual branch ends in a BatchNorm with gamma 0 and every other BatchNorm starts at gamma 1', (t) => {
  const { params } = resnet(false);
  const residualEnd = /^stage\d_unit\d+_bn3$/;
  const gammas = params.filter((p) => p.role === 'gamma');
  const ends = gammas.filter((p) => residualEnd.test(p.layer));
  t.is(ends.length, 16, 'one per bottleneck');
  for (const p of gammas) t.is(constantOf(p), residualEnd.test(p.layer) ? 0 : 1, p.name);
  t.true(
    gammas.some((p) => p.layer === 'expand_bn3'),
    'expand_bn3 is not a residual end and starts at 1',
  );
  t.true(params.filter((p) => p.role === 'beta').every((p) => constantOf(p) === 0));
});

test('a pretrained resnet-50 base (the default) keeps every base BatchNorm frozen with gamma 1', (t) => {
  const byDefault = resnet(undefined);
  t.deepEqual(byDefault, resnet(true));
  t.true(byDefault.pretrainedBase);
  for (const p of baseBatchNorms(byDefault.params)) {
    t.false(p.trainable, p.name);
    if (p.role === 'gamma') t.is(constantOf(p), 1, p.name);
  }
  const expander = byDefault.params.filter((p) => p.part === 'extra' && AFFINE.has(p.role));
  t.true(expander.length > 0 && expander.every((p) => p.trainable), 'the expander BatchNorms still train');
});

test('resnet-50 from scratch and pretrained differ only in the base BatchNorm affines, never in names or shapes', (t) => {
  const pretrained = resnet(true);
  const scratch = resnet(false);
  t.deepEqual(
    scratch.params.map((p) => [p.name, p.shape, p.part]),
    pretrained.params.map((p) => [p.name, p.shape, p.part]),
    'the same variables in the same order: weights of either kind load into the other',
  );
  const differing = scratch.params
    .filter((p, i) => JSON.stringify(p) !== JSON.stringify(pretrained.params[i]))
    .map((p) => p.name);
  t.deepEqual(
    differing,
    baseBatchNorms(scratch.params)
      .filter((p) => AFFINE.has(p.role))
      .map((p) => p.name),
  );
  const added = trainableNames(scratch.params).filter((n) => !trainableNames(pretrained.params).includes(n));
  t.deepEqual(added, differing, 'training gains exactly those terms');
  t.deepEqual(
    trainableNames(scratch.params, /^(conv0|bn0|stage1_)/).filter((n) => /^(bn0|stage1_)/.test(n)),
    [],
    'freeze_layer_pattern still freezes them by layer name',
  );
});

const unaffected = test.macro({
  exec(t, baseNetwork: BaseNetwork, imageShape: number) {
    const describe = (pretrainedBase: boolean) =>
      describeSsd({ baseNetwork, imageShape, numClasses: 20, pretrainedBase });
    const [pretrained, scratch] = [describe(true), describe(false)];
    t.deepEqual(scratch.params, pretrained.params);
    t.is(scratch.trainableParameterCount, pretrained.trainableParameterCount);
    t.true(
      pretrained.params.every((p) => p.trainable),
      'no frozen parameter (no BatchNorm) to change',
    );
  },
  title: (_p, base, size) => `${base} at ${size} is the same network with and without a pretrained base`,
});

test(unaffected, 'vgg-16', 300);
test(unaffected, 'vgg-16', 512);
test(unaffected, 'tiny', 128);
