import test from 'ava';
import { withHost } from '../../coordinator/join-admission.js';

test('withHost fills an empty or wildcard host from the address the coordinator saw', (t) => {
  t.is(withHost(':7000', 'ipv4:10.1.2.3:5555'), '10.1.2.3:7000');
  t.is(withHost('0.0.0.0:7000', '127.0.0.1:5555'), '127.0.0.1:7000');
  t.is(withHost('peer-host:7000', '127.0.0.1:5555'), 'peer-host:7000');
});
