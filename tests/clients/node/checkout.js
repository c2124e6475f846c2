// A Node.js client of commerce-mesh built from proto/ alone, as any integrator would write it:
// @grpc/grpc-js for the calls, @grpc/proto-loader for the stubs, protobufjs to read the
// google.rpc.Status a refused call carries in its grpc-status-details-bin trailer.
//
//   EDGE=localhost:8080 TENANT=demo EMAIL=customer@demo.test PASSWORD=... node tests/clients/node/checkout.js
//
// It logs in, lists products, puts the first one in the cart, places an order, and is refused
// twice (a product that does not exist, by the catalog; a token that is no JWT, by the edge),
// printing one JSON object with what it saw. Exits 1 on anything unexpected.
"use strict";

const path = require("node:path");
const crypto = require("node:crypto");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const protobuf = require("protobufjs");

const PROTO = path.resolve(__dirname, "../../../proto");
const FILES = ["tenant", "catalog", "cart", "order"].map((d) => `commerce/${d}/v1/${d}.proto`);
const LOADING = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO] };

const packages = grpc.loadPackageDefinition(protoLoader.loadSync(FILES, LOADING));
const { tenant, catalog, cart, order } = packages.commerce;

// google.rpc.Status and its details, from the protos vendored in proto/google/rpc.
const statusRoot = new protobuf.Root();
statusRoot.resolvePath = (_origin, target) => path.join(PROTO, target);
statusRoot.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"]);
const Status = statusRoot.lookupType("google.rpc.Status");

/** The ErrorInfo reason (and BadRequest fields) of a refused call, from grpc-status-details-bin. */
function richError(error) {
  const [raw] = error.metadata ? error.metadata.get("grpc-status-details-bin") : [];
  if (!raw) return { code: error.code, message: error.details, reason: null, fields: [] };
  const status = Status.decode(raw);
  let reason = null;
  let fields = [];
  for (const detail of status.details) {
    const type = statusRoot.lookupType(detail.type_url.split("/").pop());
    const message = type.toObject(type.decode(detail.value));
    if (type.name === "ErrorInfo") reason = message.reason;
    if (type.name === "BadRequest") fields = (message.field_violations || []).map((v) => v.field);
  }
  return { code: error.code, codeName: grpc.status[error.code], message: status.message, reason, fields };
}

function call(client, method, request, token) {
  const metadata = new grpc.Metadata();
  if (token) metadata.set("authorization", `Bearer ${token}`);
  return new Promise((resolve, reject) => {
    client[method](request, metadata, { deadline: Date.now() + 15000 }, (error, reply) =>
      error ? reject(error) : resolve(reply));
  });
}

async function refusal(promise) {
  try {
    await promise;
  } catch (error) {
    return richError(error);
  }
  throw new Error("the call was expected to be refused");
}

async function main() {
  const { EDGE, TENANT, EMAIL, PASSWORD } = process.env;
  const credentials = grpc.credentials.createInsecure();
  const tenants = new tenant.v1.TenantService(EDGE, credentials);
  const products = new catalog.v1.CatalogService(EDGE, credentials);
  const carts = new cart.v1.CartService(EDGE, credentials);
  const orders = new order.v1.OrderService(EDGE, credentials);

  const login = await call(tenants, "Login", { tenant_id: TENANT, email: EMAIL, password: PASSWORD });
  const token = login.access_token;
  const listed = await call(products, "ListProducts", { page_size: 5 }, token);
  const product = listed.products[0];
  await call(carts, "AddCartItem", { product_id: product.product_id, quantity: 1 }, token);
  const placed = await call(orders, "PlaceOrder", {
    request_id: crypto.randomUUID(), payment_token: "tok_sandbox_ok", email: EMAIL,
    shipping_address: { recipient: "Node Client", line1: "1 Main St", city: "Springfield", country_code: "US" },
  }, token);
  const notFound = await refusal(call(products, "GetProduct", { product_id: "prd_does_not_exist" }, token));
  const badToken = await refusal(call(products, "ListProducts", { page_size: 1 }, "not-a-jwt"));
  for (const client of [tenants, products, carts, orders]) client.close();
  console.log(JSON.stringify({
    token_type: login.token_type, listed: listed.products.length, product_id: product.product_id,
    price: product.price, order_id: placed.order.order_id, order_status: placed.order.status,
    order_total: placed.order.total, not_found: notFound, bad_token: badToken,
  }));
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : error);
  process.exit(1);
});
