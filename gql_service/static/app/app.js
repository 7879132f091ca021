// The close-opportunity page: one ES module, no framework, no build step.
// It uses /graphql as any frontend would: queries, mutations whose typed errors are shown next
// to the field they name, and subscriptions over graphql-transport-ws for live updates.

const PAGE_SIZE = 10;
const LANG = document.documentElement.lang || "en";
const TOKEN_KEY = "gql_service.token";

const USER_ERROR = "__typename ... on UserError { code message field }";
const BLOCKING = "... on OpportunityHasOpenQuotesError { openQuotes { id quoteNumber name state } }";

const QUOTE_FIELDS = "id quoteNumber revisionNumber name state statusReason totalAmount currencyCode version";

const OPPORTUNITY_FIELDS = `id name customerName currencyCode estimatedRevenue estimatedCloseDate
  state statusReason actualRevenue actualCloseDate description version modifiedBy openQuoteCount
  closeHistory { id outcome statusReason closeDate actualRevenue state description competitor { name } }`;

const LABELS = `query PageLabels {
  opportunityState: enumLabels(enum: OPPORTUNITY_STATE) { value label }
  opportunityStatusReason: enumLabels(enum: OPPORTUNITY_STATUS_REASON) { value label }
  closeOutcome: enumLabels(enum: CLOSE_OUTCOME) { value label }
  quoteState: enumLabels(enum: QUOTE_STATE) { value label }
  won: closeStatusReasons(outcome: WON) { value label }
  lost: closeStatusReasons(outcome: LOST) { value label }
  competitors(first: 100) { nodes { id name } }
}`;

const LIST = `query PageOpportunities($first: Int, $after: String, $last: Int, $before: String,
    $filter: OpportunityFilter) {
  opportunities(first: $first, after: $after, last: $last, before: $before, filter: $filter) {
    nodes { id name customerName state currencyCode estimatedRevenue openQuoteCount }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}`;

const DETAIL = `query PageOpportunity($id: ID!) {
  opportunity(id: $id) { ${OPPORTUNITY_FIELDS} quotes(first: 100) { nodes { ${QUOTE_FIELDS} } } }
}`;

const CREATE_OPPORTUNITY = `mutation PageCreateOpportunity($input: CreateOpportunityInput!) {
  createOpportunity(input: $input) { opportunity { id } errors { ${USER_ERROR} } }
}`;

const CREATE_QUOTE = `mutation PageCreateQuote($input: CreateQuoteInput!) {
  createQuote(input: $input) { quote { id opportunity { version } } errors { ${USER_ERROR} } }
}`;

const CLOSE_QUOTES = `mutation PageCloseQuotes($input: CloseQuotesInput!) {
  closeQuotes(input: $input) { closedQuotes { id } opportunity { version } errors { ${USER_ERROR} } }
}`;

const CLOSE_OPPORTUNITY = `mutation PageCloseOpportunity($input: CloseOpportunityInput!) {
  closeOpportunity(input: $input) { opportunity { version } errors { ${USER_ERROR} ${BLOCKING} } }
}`;

const REOPEN = `mutation PageReopenOpportunity($input: ReopenOpportunityInput!) {
  reopenOpportunity(input: $input) { opportunity { version } errors { ${USER_ERROR} } }
}`;

const OPPORTUNITY_CHANGED = `subscription PageOpportunityChanged($id: ID!) {
  opportunityChanged(id: $id) { id version modifiedBy }
}`;

const QUOTES_CHANGED = `subscription PageQuotesChanged($opportunityId: ID!) {
  quotesChanged(opportunityId: $opportunityId) { id version }
}`;

const $ = (selector, root = document) => root.querySelector(selector);

const state = {
  strings: {},
  labels: {},
  reasons: { WON: [], LOST: [] },
  filter: "",
  page: { first: PAGE_SIZE },
  pageInfo: null,
  current: null, // the opportunity shown, as last read
  ownVersions: new Set(), // versions of it that this page's own writes made
  subscriptions: [],
};

// --- text -------------------------------------------------------------------------------------

function text(key, params = {}) {
  const template = state.strings[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

function label(enumName, value) {
  return state.labels[enumName]?.[value] ?? value ?? "";
}

function money(amount, currency) {
  if (amount === null || amount === undefined) return "";
  try {
    return new Intl.NumberFormat(LANG, { style: "currency", currency }).format(Number(amount));
  } catch {
    return `${amount} ${currency}`;
  }
}

function today() {
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

// --- the API ------------------------------------------------------------------------------------

function authorization() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? `Bearer ${token}` : null;
}

class ApiError extends Error {}

async function graphql(query, variables = {}) {
  const headers = { "content-type": "application/json", accept: "application/graphql-response+json" };
  const auth = authorization();
  if (auth) headers.authorization = auth;
  let response;
  try {
    response = await fetch("/graphql", { method: "POST", headers, body: JSON.stringify({ query, variables }) });
  } catch {
    throw new ApiError(text("requestFailed"));
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(text("requestFailed"));
  }
  if (body.errors?.length) throw new ApiError(body.errors.map((e) => e.message).join(" "));
  return body.data;
}

// graphql-transport-ws: one socket, many subscriptions, reconnect with backoff.
class LiveClient {
  constructor() {
    this.socket = null;
    this.ready = false;
    this.next = 1;
    this.active = new Map(); // id -> {query, variables, onNext}
    this.backoff = 500;
  }

  connect() {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`;
    const socket = new WebSocket(url, "graphql-transport-ws");
    this.socket = socket;
    socket.onopen = () => {
      const payload = { "Accept-Language": LANG };
      const auth = authorization();
      if (auth) payload.Authorization = auth;
      socket.send(JSON.stringify({ type: "connection_init", payload }));
    };
    socket.onmessage = (event) => this.receive(JSON.parse(event.data));
    socket.onclose = () => {
      this.ready = false;
      showLive(false);
      setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 10000);
    };
  }

  receive(message) {
    if (message.type === "connection_ack") {
      this.ready = true;
      this.backoff = 500;
      showLive(true);
      for (const id of this.active.keys()) this.send(id);
    } else if (message.type === "ping") {
      this.socket.send(JSON.stringify({ type: "pong" }));
    } else if (message.type === "next") {
      const subscription = this.active.get(message.id);
      if (subscription && message.payload?.data) subscription.onNext(message.payload.data);
    }
  }

  send(id) {
    const { query, variables } = this.active.get(id);
    this.socket.send(JSON.stringify({ id, type: "subscribe", payload: { query, variables } }));
  }

  subscribe(query, variables, onNext) {
    const id = String(this.next++);
    this.active.set(id, { query, variables, onNext });
    if (this.ready) this.send(id);
    return id;
  }

  unsubscribe(id) {
    if (!this.active.delete(id)) return;
    if (this.ready) this.socket.send(JSON.stringify({ id, type: "complete" }));
  }
}

const live = new LiveClient();

function showLive(on) {
  const badge = $("#live-status");
  badge.dataset.state = on ? "on" : "off";
  badge.textContent = text(on ? "liveOn" : "liveOff");
}

// --- typed errors next to their fields -----------------------------------------------------------

function clearErrors(root) {
  for (const slot of root.querySelectorAll("[data-error-for]")) slot.textContent = "";
}

function showErrors(root, errors) {
  for (const error of errors) {
    if (error.__typename === "OpportunityHasOpenQuotesError") {
      showBlockingQuotes(error);
      continue;
    }
    const field = error.field?.length ? error.field[error.field.length - 1] : "";
    const slot = root.querySelector(`[data-error-for="${CSS.escape(field)}"]`) ?? root.querySelector('[data-error-for=""]');
    slot.textContent = slot.textContent ? `${slot.textContent} ${error.message}` : error.message;
    slot.dataset.code = error.code;
  }
}

function showBlockingQuotes(error) {
  const box = $("#blocking-quotes");
  box.hidden = false;
  $("#blocking-message").textContent = error.message;
  $("#blocking-message").dataset.code = error.code;
  const list = $("ul", box);
  list.replaceChildren(
    ...error.openQuotes.map((quote) =>
      element("li", { "data-quote-id": quote.id }, `${quote.quoteNumber} · ${quote.name} · ${label("quoteState", quote.state)}`),
    ),
  );
}

function formValue(form, name) {
  const value = form.elements[name].value.trim();
  return value === "" ? null : value;
}

// --- the list ------------------------------------------------------------------------------------

async function loadList() {
  const variables = { ...state.page };
  if (state.filter) variables.filter = { state: [state.filter] };
  const data = await graphql(LIST, variables);
  const { nodes, pageInfo } = data.opportunities;
  state.pageInfo = pageInfo;
  const rows = nodes.map((o) => {
    const row = element(
      "tr",
      { "data-id": o.id },
      element("td", {}, o.name),
      element("td", {}, o.customerName),
      element("td", { "data-field": "state" }, label("opportunityState", o.state)),
      element("td", {}, money(o.estimatedRevenue, o.currencyCode)),
      element("td", {}, String(o.openQuoteCount)),
    );
    if (state.current?.id === o.id) row.classList.add("selected");
    row.addEventListener("click", () => openOpportunity(o.id));
    return row;
  });
  if (!rows.length) rows.push(element("tr", {}, element("td", { colspan: "5" }, text("noOpportunities"))));
  $("#opportunities tbody").replaceChildren(...rows);
  $("#previous-page").disabled = !pageInfo.hasPreviousPage;
  $("#next-page").disabled = !pageInfo.hasNextPage;
}

// --- one opportunity ------------------------------------------------------------------------------

async function openOpportunity(id) {
  for (const subscription of state.subscriptions) live.unsubscribe(subscription);
  state.subscriptions = [
    live.subscribe(OPPORTUNITY_CHANGED, { id }, (data) => onOpportunityChanged(data.opportunityChanged)),
    live.subscribe(QUOTES_CHANGED, { opportunityId: id }, () => refresh()),
  ];
  $("#live-notice").hidden = true;
  $("#action-errors").textContent = "";
  state.ownVersions = new Set();
  await loadDetail(id);
  for (const row of document.querySelectorAll("#opportunities tr[data-id]")) {
    row.classList.toggle("selected", row.dataset.id === id);
  }
}

async function loadDetail(id) {
  const data = await graphql(DETAIL, { id });
  const o = data.opportunity;
  state.current = o;
  renderDetail(o);
}

async function refresh() {
  if (state.current) await loadDetail(state.current.id);
  await loadList();
}

// A change announced live is a colleague's unless this page's own write made that version. The
// announcement can overtake the write's own response: then the notice is taken back.
function onOpportunityChanged(changed) {
  if (!state.current || changed.id !== state.current.id) return;
  if (changed.version > state.current.version && !state.ownVersions.has(changed.version)) {
    const notice = $("#live-notice");
    notice.textContent = text("changedByColleague", { user: changed.modifiedBy });
    notice.dataset.version = String(changed.version);
    notice.hidden = false;
  }
  refresh();
}

function wrote(version) {
  state.ownVersions.add(version);
  const notice = $("#live-notice");
  if (notice.dataset.version === String(version)) notice.hidden = true;
  if (state.current && version > state.current.version) state.current.version = version;
}

function renderDetail(o) {
  $("#detail-pane").hidden = false;
  $("#detail-pane").dataset.id = o.id;
  $("#detail-name").textContent = o.name;
  const fields = [
    ["customer", o.customerName, "customerName"],
    ["state", label("opportunityState", o.state), "state"],
    ["statusReason", label("opportunityStatusReason", o.statusReason), "statusReason"],
    ["estimatedRevenue", money(o.estimatedRevenue, o.currencyCode), "estimatedRevenue"],
    ["estimatedCloseDate", o.estimatedCloseDate ?? "", "estimatedCloseDate"],
    ["actualRevenue", money(o.actualRevenue, o.currencyCode), "actualRevenue"],
    ["closeDate", o.actualCloseDate ?? "", "actualCloseDate"],
    ["version", String(o.version), "version"],
  ];
  $("#detail-fields").replaceChildren(
    ...fields.flatMap(([key, value, name]) => [element("dt", {}, text(key)), element("dd", { "data-field": name }, value)]),
  );
  const open = o.state === "OPEN";
  $("#close-quotes").disabled = !open || o.openQuoteCount === 0;
  $("#open-close-dialog").disabled = !open;
  $("#reopen").disabled = open;
  $("#quote-form").hidden = !open;

  const quotes = o.quotes.nodes.map((q) =>
    element(
      "tr",
      { "data-quote-id": q.id },
      element("td", {}, `${q.quoteNumber}${q.revisionNumber ? ` / ${q.revisionNumber}` : ""}`),
      element("td", {}, q.name),
      element("td", { "data-field": "state" }, label("quoteState", q.state)),
      element("td", {}, money(q.totalAmount, q.currencyCode)),
    ),
  );
  if (!quotes.length) quotes.push(element("tr", {}, element("td", { colspan: "4" }, text("noQuotes"))));
  $("#quotes tbody").replaceChildren(...quotes);

  const history = o.closeHistory.map((c) =>
    element(
      "li",
      { "data-state": c.state },
      `${c.closeDate} · ${label("closeOutcome", c.outcome)} · ${label("opportunityStatusReason", c.statusReason)}` +
        (c.competitor ? ` · ${c.competitor.name}` : "") +
        (c.state === "CANCELED" ? ` (${text("canceled")})` : ""),
    ),
  );
  if (!history.length) history.push(element("li", {}, text("noCloses")));
  $("#close-history").replaceChildren(...history);
}

// --- actions ---------------------------------------------------------------------------------------

async function run(action, errorRoot) {
  try {
    await action();
  } catch (error) {
    const slot = errorRoot.querySelector('[data-error-for=""]') ?? $("#action-errors");
    slot.textContent = error.message;
  }
}

async function closeQuotes() {
  const data = await graphql(CLOSE_QUOTES, {
    input: { opportunityId: state.current.id, expectedVersion: state.current.version },
  });
  const payload = data.closeQuotes;
  if (payload.errors.length) {
    $("#action-errors").textContent = payload.errors.map((e) => e.message).join(" ");
    return false;
  }
  wrote(payload.opportunity.version);
  $("#action-errors").textContent = text("quotesClosed", { count: payload.closedQuotes.length });
  await refresh();
  return true;
}

async function reopen() {
  const data = await graphql(REOPEN, {
    input: { opportunityId: state.current.id, expectedVersion: state.current.version },
  });
  const payload = data.reopenOpportunity;
  if (payload.errors.length) {
    $("#action-errors").textContent = payload.errors.map((e) => e.message).join(" ");
    return;
  }
  wrote(payload.opportunity.version);
  $("#action-errors").textContent = "";
  await refresh();
}

function fillReasons(outcome) {
  const select = $("#close-form").elements.statusReason;
  select.replaceChildren(...state.reasons[outcome].map((r) => element("option", { value: r.value }, r.label)));
}

// "12000.0000" (the API's Decimal) as a person types it: "12000.00".
function editableAmount(amount) {
  return amount.replace(/(\.\d\d\d*?)0+$/, "$1");
}

function prefillRevenue(outcome) {
  const field = $("#close-form").elements.actualRevenue;
  const estimated = state.current.estimatedRevenue;
  field.value = outcome === "WON" && estimated !== null ? editableAmount(estimated) : "";
}

function openCloseDialog() {
  const form = $("#close-form");
  form.reset();
  clearErrors(form);
  $("#blocking-quotes").hidden = true;
  form.elements.outcome.value = "WON";
  fillReasons("WON");
  prefillRevenue("WON");
  form.elements.closeDate.value = today();
  $("#close-dialog").showModal();
}

async function submitClose(form) {
  clearErrors(form);
  $("#blocking-quotes").hidden = true;
  const input = {
    opportunityId: state.current.id,
    outcome: form.elements.outcome.value,
    statusReason: formValue(form, "statusReason"),
    closeDate: formValue(form, "closeDate"),
    actualRevenue: formValue(form, "actualRevenue"),
    competitorId: formValue(form, "competitorId"),
    description: formValue(form, "description"),
    expectedVersion: state.current.version,
  };
  const data = await graphql(CLOSE_OPPORTUNITY, { input });
  const payload = data.closeOpportunity;
  if (payload.errors.length) {
    showErrors(form, payload.errors);
    return;
  }
  wrote(payload.opportunity.version);
  $("#close-dialog").close();
  await refresh();
}

async function submitCreate(form) {
  clearErrors(form);
  const input = {
    name: form.elements.name.value.trim(),
    customerName: form.elements.customerName.value.trim(),
    currencyCode: form.elements.currencyCode.value.trim().toUpperCase(),
    estimatedRevenue: formValue(form, "estimatedRevenue"),
  };
  const data = await graphql(CREATE_OPPORTUNITY, { input });
  const payload = data.createOpportunity;
  if (payload.errors.length) {
    showErrors(form, payload.errors);
    return;
  }
  form.reset();
  form.hidden = true;
  await loadList();
  await openOpportunity(payload.opportunity.id);
}

async function submitQuote(form) {
  clearErrors(form);
  const input = {
    opportunityId: state.current.id,
    name: form.elements.name.value.trim(),
    totalAmount: formValue(form, "totalAmount"),
  };
  const data = await graphql(CREATE_QUOTE, { input });
  const payload = data.createQuote;
  if (payload.errors.length) {
    showErrors(form, payload.errors);
    return;
  }
  wrote(payload.quote.opportunity.version);
  form.reset();
  await refresh();
}

// --- start -----------------------------------------------------------------------------------------

function applyStrings() {
  document.title = text("title");
  for (const node of document.querySelectorAll("[data-text]")) node.textContent = text(node.dataset.text);
  for (const node of document.querySelectorAll("[data-label]")) {
    const [enumName, value] = node.dataset.label.split(":");
    node.textContent = label(enumName, value);
  }
}

async function loadLabels() {
  const data = await graphql(LABELS);
  for (const name of ["opportunityState", "opportunityStatusReason", "closeOutcome", "quoteState"]) {
    state.labels[name] = Object.fromEntries(data[name].map((l) => [l.value, l.label]));
  }
  state.reasons = { WON: data.won, LOST: data.lost };
  $("#state-filter").append(...data.opportunityState.map((l) => element("option", { value: l.value }, l.label)));
  $("#close-form").elements.competitorId.append(
    ...data.competitors.nodes.map((c) => element("option", { value: c.id }, c.name)),
  );
}

function wire() {
  $("#token").value = sessionStorage.getItem(TOKEN_KEY) ?? "";
  $("#save-token").addEventListener("click", () => {
    sessionStorage.setItem(TOKEN_KEY, $("#token").value.trim());
    location.reload();
  });
  $("#state-filter").addEventListener("change", (event) => {
    state.filter = event.target.value;
    state.page = { first: PAGE_SIZE };
    run(loadList, $("#list-pane"));
  });
  $("#next-page").addEventListener("click", () => {
    state.page = { first: PAGE_SIZE, after: state.pageInfo.endCursor };
    run(loadList, $("#list-pane"));
  });
  $("#previous-page").addEventListener("click", () => {
    state.page = { last: PAGE_SIZE, before: state.pageInfo.startCursor };
    run(loadList, $("#list-pane"));
  });
  $("#new-opportunity").addEventListener("click", () => {
    $("#create-form").hidden = false;
    $("#create-form").elements.name.focus();
  });
  $("#create-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run(() => submitCreate(event.target), event.target);
  });
  $("#quote-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run(() => submitQuote(event.target), event.target);
  });
  $("#close-quotes").addEventListener("click", () => run(closeQuotes, $("#detail-pane")));
  $("#reopen").addEventListener("click", () => run(reopen, $("#detail-pane")));
  $("#open-close-dialog").addEventListener("click", openCloseDialog);
  $("#dialog-close-quotes").addEventListener("click", () =>
    run(async () => {
      if (await closeQuotes()) $("#blocking-quotes").hidden = true;
    }, $("#close-form")),
  );
  const closeForm = $("#close-form");
  for (const radio of closeForm.querySelectorAll('input[name="outcome"]')) {
    radio.addEventListener("change", () => {
      fillReasons(radio.value);
      prefillRevenue(radio.value);
    });
  }
  closeForm.addEventListener("submit", (event) => {
    event.preventDefault();
    run(() => submitClose(closeForm), closeForm);
  });
  for (const cancel of document.querySelectorAll('[data-action="cancel"]')) {
    cancel.addEventListener("click", () => {
      const form = cancel.closest("form");
      if (form.id === "close-form") $("#close-dialog").close();
      else form.hidden = true;
    });
  }
}

async function start() {
  const strings = await (await fetch("/app/static/strings.json")).json();
  state.strings = strings[LANG] ?? strings.en;
  wire();
  showLive(false);
  await run(loadLabels, $("#list-pane"));
  applyStrings();
  live.connect();
  await run(loadList, $("#list-pane"));
  document.body.dataset.ready = "true";
}

start();
