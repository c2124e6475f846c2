// ListProducts load for `make bench` (bench/search.py runs it; see bench/k6.py): REST through
// Envoy, open loop (RATE requests per second started on schedule, whatever the answers take),
// each request the next path of PATHS_FILE (a JSON array; iterations take them in order, so no
// path is asked twice while the file lasts: the warm-up's are the first OFFSET), with TOKEN as bearer. "warmup" (WARMUP_S seconds)
// then "measure" (DURATION_S seconds); the trends "results" (products in the page) and
// "total" (totalSize, with facets) tell how much each request matched.
import http from 'k6/http';
import exec from 'k6/execution';
import { SharedArray } from 'k6/data';
import { Counter, Trend } from 'k6/metrics';

const TARGET = __ENV.TARGET;
const RATE = parseInt(__ENV.RATE, 10);
const VUS = parseInt(__ENV.VUS, 10);
const WARMUP_S = parseInt(__ENV.WARMUP_S, 10);
const DURATION_S = parseInt(__ENV.DURATION_S, 10);
const OFFSET = parseInt(__ENV.OFFSET, 10);
const HEADERS = { authorization: `Bearer ${__ENV.TOKEN}` };

const paths = new SharedArray('paths', () => JSON.parse(open(__ENV.PATHS_FILE)));
const errors = new Counter('errors');
const results = new Trend('results');
const total = new Trend('total');
const wrapped = new Counter('wrapped');
const empty = new Counter('empty');

function arrival(start, seconds) {
  return { executor: 'constant-arrival-rate', rate: RATE, timeUnit: '1s', duration: `${seconds}s`,
           preAllocatedVUs: VUS, maxVUs: VUS * 4, startTime: start, gracefulStop: '5s' };
}

export const options = {
  scenarios: { warmup: arrival('0s', WARMUP_S), measure: arrival(`${WARMUP_S}s`, DURATION_S) },
  thresholds: {
    'http_req_duration{scenario:measure}': ['max>=0'],
    'iterations{scenario:measure}': ['count>=0'],
    'errors{scenario:measure}': ['count>=0'],
    'results{scenario:measure}': ['max>=0'],
    'total{scenario:measure}': ['max>=0'],
    'wrapped{scenario:measure}': ['count>=0'],
    'empty{scenario:measure}': ['count>=0'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max'],
};

export default function () {
  // the warm-up takes the first paths, the measured part those from OFFSET on
  const index = (exec.scenario.name === 'measure' ? OFFSET : 0) + exec.scenario.iterationInTest;
  if (index >= paths.length) {
    wrapped.add(1);
  }
  const res = http.get(`${TARGET}${paths[index % paths.length]}`, { headers: HEADERS, timeout: '10s' });
  if (res.status !== 200) {
    errors.add(1);
    return;
  }
  const body = res.json();
  const found = (body.products || []).length;
  results.add(found);
  if (found === 0) {
    empty.add(1);
  }
  if (body.facets !== undefined && body.facets.length) {
    total.add(parseInt(body.totalSize || '0', 10));
  }
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY_FILE]: JSON.stringify(data) };
}
