import test from 'ava';
import { closestName, editDistance } from '../../../shared/config/closest-name.js';

test('editDistance counts insertions, deletions and substitutions', (t) => {
  t.is(editDistance('', 'abc'), 3);
  t.is(editDistance('kitten', 'sitting'), 3);
  t.is(editDistance('epochs', 'epochs'), 0);
});

test('closestName ignores case and dashes and gives up when nothing is near', (t) => {
  const names = ['learning_rate', 'epochs', 'early_stopping', 'early_stopping_patience'];
  t.is(closestName('Learning-Rate', names), 'learning_rate');
  t.is(closestName('epoch', names), 'epochs');
  t.is(closestName('early_stoping', names), 'early_stopping');
  t.is(closestName('patience', names), 'early_stopping_patience');
  t.is(closestName('xyz', names), undefined);
});
