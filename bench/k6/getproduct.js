// GetProduct load for `make bench` (bench/getproduct.py runs it; see bench/k6.py).
// MODE=grpc: native gRPC to TARGET (host:port), messages from the descriptor set PROTOSET.
// MODE=rest: GET TARGET/v1/products/{id} (TARGET is a base URL).
// Each request asks for a random id of IDS_FILE (a JSON array), with TOKEN as bearer.
// Two scenarios: "warmup" (WARMUP_S seconds), then "measure" (DURATION_S seconds), VUS each;
// the thresholds only make k6 report the "measure" sub-metrics in the summary.
import grpc from 'k6/net/grpc';
import http from 'k6/http';
import { SharedArray } from 'k6/data';
import { Counter } from 'k6/metrics';

const MODE = __ENV.MODE;
const TARGET = __ENV.TARGET;
const VUS = parseInt(__ENV.VUS, 10);
const WARMUP_S = parseInt(__ENV.WARMUP_S, 10);
const DURATION_S = parseInt(__ENV.DURATION_S, 10);
const METADATA = { authorization: `Bearer ${__ENV.TOKEN}` };
const LATENCY = MODE === 'grpc' ? 'grpc_req_duration' : 'http_req_duration';

const ids = new SharedArray('ids', () => JSON.parse(open(__ENV.IDS_FILE)));
const errors = new Counter('errors');
const client = new grpc.Client();
if (MODE === 'grpc') {
  client.loadProtoset(__ENV.PROTOSET);
}

export const options = {
  scenarios: {
    warmup: { executor: 'constant-vus', vus: VUS, duration: `${WARMUP_S}s`, gracefulStop: '2s' },
    measure: { executor: 'constant-vus', vus: VUS, duration: `${DURATION_S}s`, startTime: `${WARMUP_S}s`,
               gracefulStop: '5s' },
  },
  thresholds: {
    [`${LATENCY}{scenario:measure}`]: ['max>=0'],
    'iterations{scenario:measure}': ['count>=0'],
    'errors{scenario:measure}': ['count>=0'],
  },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

let connected = false;

function getGrpc(id) {
  if (!connected) {
    client.connect(TARGET, { plaintext: true, timeout: '10s' });
    connected = true;
  }
  const res = client.invoke('commerce.catalog.v1.CatalogService/GetProduct', { product_id: id },
                            { metadata: METADATA, timeout: '10s' });
  return res && res.status === grpc.StatusOK && res.message.product.productId === id;
}

function getRest(id) {
  const res = http.get(`${TARGET}/v1/products/${id}`, { headers: METADATA, timeout: '10s' });
  return res.status === 200 && res.json('product.productId') === id;
}

export default function () {
  const id = ids[Math.floor(Math.random() * ids.length)];
  let ok = false;
  try {
    ok = MODE === 'grpc' ? getGrpc(id) : getRest(id);
  } catch (e) {
    connected = false;
  }
  if (!ok) {
    errors.add(1);
  }
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY_FILE]: JSON.stringify(data) };
}
