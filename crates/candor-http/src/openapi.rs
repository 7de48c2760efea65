//! The OpenAPI 3.1 document served at `/openapi.json`. Written by hand next to the router;
//! a test checks that every route in [`crate::ROUTES`] is documented and nothing else is.

use serde_json::{Value, json};

fn error_response(desc: &str) -> Value {
    json!({ "description": desc, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn json_body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn ok(desc: &str, schema: Value) -> Value {
    json!({ "description": desc, "content": { "application/json": { "schema": schema } } })
}

fn ingest_op(kind: &str, summary: &str) -> Value {
    json!({
        "tags": ["ingestion"],
        "summary": summary,
        "description": format!("Segment-compatible `{kind}` call. Consent in `context.consent.categoryPreferences` and a `Sec-GPC: 1` header are recorded before the event is judged. The event is stored only if a permitted purpose may collect its category, and only the fields such purposes may read. Any key scope may call it (write keys are browser-safe)."),
        "security": [{ "basic": [] }, { "bearer": [] }],
        "parameters": [{ "name": "Sec-GPC", "in": "header", "required": false, "schema": { "type": "string", "enum": ["1"] }, "description": "Global Privacy Control: an opt-out of sale/sharing and targeted advertising." }],
        "requestBody": json_body(json!({ "$ref": "#/components/schemas/SegmentMessage" })),
        "responses": {
            "200": ok("The event's outcome: accepted, duplicate or dropped (with the reason).", json!({ "type": "object", "properties": { "success": { "type": "boolean" }, "result": { "$ref": "#/components/schemas/EventResult" } } })),
            "400": error_response("Invalid JSON or an invalid Segment message; nothing was stored."),
            "401": error_response("Missing or invalid API key."),
            "413": error_response("Body over 512 KiB."),
        }
    })
}

fn price_check_schema() -> Value {
    let amount = json!({ "type": ["string", "number"], "description": "An amount in the currency, with at most its decimals (\"12.50\" EUR, \"1500\" JPY)." });
    json!({ "type": "object", "required": ["product", "currency", "listPrice", "proposedPrice"], "additionalProperties": false, "properties": {
        "product": { "type": "string", "maxLength": 200 },
        "category": { "type": "string", "maxLength": 100, "description": "Caps and essential categories of `[pricing]` apply by it." },
        "currency": { "type": "string", "description": "ISO 4217 code." },
        "listPrice": amount.clone(),
        "proposedPrice": amount.clone(),
        "unpersonalizedPrice": amount.clone(),
        "userId": { "type": "string", "description": "The person the price is for; needed for a personal-data price (their consent is checked)." },
        "anonymousId": { "type": "string" },
        "segment": { "type": "string", "maxLength": 100, "description": "Everyone in the segment is shown the same price within `[pricing] segment_window`." },
        "signals": { "type": "array", "maxItems": 64, "items": { "oneOf": [{ "type": "string" }, { "type": "object", "required": ["name"], "properties": { "name": { "type": "string" }, "source": { "type": "string", "description": "The field it came from, e.g. traits.age." } } }] } },
        "presentedAsDiscount": { "type": "boolean", "description": "The price is announced as a reduction: checked against the lowest price of the prior period." },
        "referencePrice": amount } })
}

fn pricing_paths() -> Value {
    let admin = json!([{ "bearer": [] }]);
    json!({
        "/v1/prices/check": { "post": {
            "tags": ["pricing"], "summary": "Check a proposed price before a customer sees it: allow, adjust to a bound, or refuse (and show the unpersonalized price)",
            "description": "Signals derived from protected attributes, flagged proxies and vulnerability signals are refused; personal-data pricing is off unless the policy allows it, and then needs the person's grant (a person who objected to profiling gets the unpersonalized price). Caps per category, no surge on essential categories, one price per segment and window. `disclosure` is set exactly when personal data shaped the price. Recorded within one group commit after the answer (a decision about the person when their data was involved).",
            "security": admin.clone(),
            "requestBody": json_body(price_check_schema()),
            "responses": { "200": ok("The verdict, the price to show, reasons, signals by class, bounds, disclosure and, for a reduction, the prior lowest price.", json!({ "type": "object" })),
                "400": error_response("Invalid check (product, currency, amount, precision, signal); nothing recorded."),
                "403": error_response("Needs a server or admin key.") } } },
        "/v1/prices/check/batch": { "post": {
            "tags": ["pricing"], "summary": "Check up to 10,000 prices (catalogue-wide repricing); recorded before the answer",
            "security": admin.clone(),
            "requestBody": json_body(json!({ "type": "object", "required": ["checks"], "additionalProperties": false, "properties": { "checks": { "type": "array", "maxItems": 10000, "items": price_check_schema() } } })),
            "responses": { "200": ok("One result per check and the counts.", json!({ "type": "object" })),
                "400": error_response("An invalid check (its index in the message) or batch size; nothing recorded."),
                "413": error_response("Body over 16 MiB.") } } },
        "/v1/prices/checks": { "get": {
            "tags": ["pricing"], "summary": "Recent checks no personal data shaped, with their explanations", "security": admin.clone(),
            "parameters": [{ "name": "product", "in": "query", "required": false, "schema": { "type": "string" } }, { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 1000 } }],
            "responses": { "200": ok("Checks.", json!({ "type": "object" })), "403": error_response("Needs an admin key.") } } },
        "/v1/prices/history": { "post": {
            "tags": ["pricing"], "summary": "Import price history: list prices in effect from a time, order lines (by order id) and cancelled orders",
            "security": admin.clone(),
            "requestBody": json_body(json!({ "type": "object", "additionalProperties": false, "properties": {
                "prices": { "type": "array", "maxItems": 100000, "items": { "type": "object", "required": ["product", "currency", "price", "at"], "properties": {
                    "product": { "type": "string" }, "currency": { "type": "string" }, "price": { "type": ["string", "number"] }, "at": { "type": "string", "format": "date-time" },
                    "orderId": { "type": "string" }, "quantity": { "type": "number" }, "country": { "type": "string" }, "id": { "type": "string" } } } },
                "cancellations": { "type": "array", "maxItems": 100000, "items": { "type": "object", "required": ["orderId", "at"], "properties": { "orderId": { "type": "string" }, "at": { "type": "string", "format": "date-time" } } } } } })),
            "responses": { "200": ok("Received, inserted, duplicates.", json!({ "type": "object" })), "400": error_response("An invalid item; nothing imported.") } } },
        "/v1/prices/history/{product}": { "get": {
            "tags": ["pricing"], "summary": "A product's price history and the lowest price of the prior period (EU Omnibus Directive)", "security": admin.clone(),
            "parameters": [{ "name": "product", "in": "path", "required": true, "schema": { "type": "string" } },
                { "name": "currency", "in": "query", "required": true, "schema": { "type": "string" } },
                { "name": "days", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 3650 } }],
            "responses": { "200": ok("History and `lowestPrior`.", json!({ "type": "object" })), "400": error_response("Bad currency or days.") } } },
        "/v1/prices/dispersion": { "post": {
            "tags": ["pricing"], "summary": "Audit what groups paid for the same product in a period (country, segment, protected traits through fairness_audit); flagged groups raise alerts",
            "security": admin.clone(),
            "parameters": [{ "name": "format", "in": "query", "required": false, "schema": { "type": "string", "enum": ["json", "html"] } }],
            "requestBody": json_body(json!({ "type": "object", "required": ["from"], "additionalProperties": false, "properties": {
                "from": { "type": "string", "format": "date-time" }, "to": { "type": "string", "format": "date-time" },
                "period": { "type": "string", "enum": ["week", "month", "quarter", "all"] }, "top": { "type": "integer", "maximum": 1000 }, "resamples": { "type": "integer", "maximum": 10000 } } })),
            "responses": { "200": ok("The recorded audit (JSON, or the HTML report).", json!({ "type": "object" })), "400": error_response("Bad period or body."),
                "403": error_response("Needs an admin key."), "409": error_response("No order readable for the audit in the period.") } } },
        "/v1/prices/audits": { "get": { "tags": ["pricing"], "summary": "Recorded price audits (dispersion, monitoring, proxies), newest first", "security": admin.clone(),
            "responses": { "200": ok("Audits without their documents.", json!({ "type": "object" })), "403": error_response("Needs an admin key.") } } },
        "/v1/prices/audits/{id}": { "get": { "tags": ["pricing"], "summary": "One price audit with its document", "security": admin.clone(),
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
            "responses": { "200": ok("The audit.", json!({ "type": "object" })), "404": error_response("No such audit.") } } },
        "/v1/prices/audits/{id}/report": { "get": { "tags": ["pricing"], "summary": "One price audit as a self-contained HTML report with charts", "security": admin.clone(),
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
            "responses": { "200": { "description": "HTML" }, "404": error_response("No such audit.") } } },
        "/v1/prices/alerts": { "get": { "tags": ["pricing"], "summary": "Groups flagged by monitoring audits, newest first", "security": admin.clone(),
            "responses": { "200": ok("Alerts.", json!({ "type": "object" })), "403": error_response("Needs an admin key.") } } },
        "/v1/prices/proxies": {
            "get": { "tags": ["pricing"], "summary": "Proxy detection results of pricing signals (flagged ones are refused)", "security": admin.clone(),
                "responses": { "200": ok("Signals by protected attribute.", json!({ "type": "object" })), "403": error_response("Needs an admin key.") } },
            "post": { "tags": ["pricing"], "summary": "Run proxy detection on a CSV sample of signals and protected attributes (the sample is not kept)", "security": admin,
                "parameters": [{ "name": "signals", "in": "query", "required": true, "schema": { "type": "string" }, "description": "Comma-separated signal columns." },
                    { "name": "protected", "in": "query", "required": true, "schema": { "type": "string" }, "description": "Comma-separated protected columns." }],
                "requestBody": { "required": true, "content": { "text/csv": { "schema": { "type": "string" } } } },
                "responses": { "200": ok("The recorded proxy audit.", json!({ "type": "object" })), "400": error_response("Bad CSV or column names.") } } }
    })
}

fn assistant_paths() -> Value {
    let key = json!([{ "bearer": [] }, { "basic": [] }]);
    let reply = json!({ "type": "object", "properties": {
        "conversationId": { "type": "string" }, "status": { "type": "string", "enum": ["open", "handoff", "closed"] },
        "reply": { "type": "object", "properties": {
            "id": { "type": "string" }, "text": { "type": "string" },
            "disclosure": { "type": ["object", "null"], "description": "The AI disclosure (text and version from the policy): set on the first reply of every conversation." },
            "intent": { "type": "string" }, "confidence": { "type": "number" },
            "sources": { "type": "array", "items": { "type": "object" } },
            "personalDataUsed": { "type": "boolean" }, "decisionId": { "type": "string" },
            "backend": { "type": "string", "enum": ["embedded", "llm"] },
            "handoff": { "type": ["object", "null"] } } },
        "redacted": { "type": ["object", "null"], "description": "How many values of each kind were redacted from the customer's message (never the values)." } } });
    let message = json!({ "type": "object", "required": ["message"], "additionalProperties": false, "properties": { "message": { "type": "string", "minLength": 1, "maxLength": 2000 } } });
    let id =
        json!([{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }]);
    json!({
        "/v1/assistant/conversations": { "post": {
            "tags": ["assistant"], "summary": "Start a conversation with the shopping assistant; the first reply says it is an AI",
            "description": "Write or server key. `userId` or `anonymousId` link the conversation to a person (their messages are then sealed with their key, exported and erased with them); with a server key `userId` is verified and order status may be told. The optional `message` is answered in the same call. Messages are redacted (emails, phones, cards, IBANs, addresses, the person's names) before they are searched, stored or sent to a model.",
            "security": key.clone(),
            "requestBody": json_body(json!({ "type": "object", "additionalProperties": false, "properties": {
                "userId": { "type": "string" }, "anonymousId": { "type": "string" }, "message": { "type": "string", "maxLength": 2000 } } })),
            "responses": { "201": ok("The conversation and the first reply, with the disclosure.", reply.clone()),
                "400": error_response("Invalid message or ids; nothing stored.") } } },
        "/v1/assistant/conversations/{id}": { "get": {
            "tags": ["assistant"], "summary": "A conversation's messages (redacted), including staff replies", "security": key.clone(), "parameters": id.clone(),
            "responses": { "200": ok("The conversation.", json!({ "type": "object" })), "404": error_response("Unknown conversation.") } } },
        "/v1/assistant/conversations/{id}/messages": { "post": {
            "tags": ["assistant"], "summary": "The customer's next message and the assistant's reply (committed before the answer)",
            "security": key.clone(), "parameters": id.clone(), "requestBody": json_body(message.clone()),
            "responses": { "200": ok("The reply, its sources, whether personal data was used, the decision id, a hand-off.", reply),
                "400": error_response("Invalid message; nothing stored."), "404": error_response("Unknown conversation."),
                "409": error_response("`conversation_busy`: another message was answered first; `conversation_closed`.") } } },
        "/v1/assistant/tickets": { "get": {
            "tags": ["assistant"], "summary": "Hand-offs to a person (requested, sensitive topic, repeated misunderstanding)", "security": key.clone(),
            "parameters": [{ "name": "status", "in": "query", "required": false, "schema": { "type": "string", "enum": ["open", "answered", "closed"] } },
                { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 500 } }],
            "responses": { "200": ok("Tickets.", json!({ "type": "object" })), "403": error_response("Needs a server or admin key.") } } },
        "/v1/assistant/tickets/{id}/reply": { "post": {
            "tags": ["assistant"], "summary": "A person's reply, delivered into the conversation (stored redacted)", "security": key.clone(), "parameters": id,
            "requestBody": json_body(json!({ "type": "object", "required": ["message"], "additionalProperties": false, "properties": { "message": { "type": "string", "maxLength": 2000 }, "close": { "type": "boolean" } } })),
            "responses": { "200": ok("The delivered message.", json!({ "type": "object" })), "404": error_response("Unknown or closed ticket."), "409": error_response("The conversation changed; send again.") } } },
        "/v1/assistant/catalog": { "post": {
            "tags": ["assistant"], "summary": "Import products the assistant searches (product events add to the catalog too)", "security": key.clone(),
            "requestBody": json_body(json!({ "type": "object", "required": ["products"], "additionalProperties": false, "properties": { "products": { "type": "array", "maxItems": 100000, "items": { "type": "object", "required": ["productId", "name"], "properties": {
                "productId": { "type": "string" }, "name": { "type": "string" }, "description": { "type": "string" }, "category": { "type": "string" },
                "price": { "type": ["string", "number"] }, "currency": { "type": "string" }, "url": { "type": "string" } } } } } })),
            "responses": { "200": ok("Received and written.", json!({ "type": "object" })), "400": error_response("An invalid product (its index in the message); nothing imported.") } } },
        "/v1/assistant/search": { "get": {
            "tags": ["assistant"], "summary": "The catalog search the assistant answers product questions from", "security": key,
            "parameters": [{ "name": "q", "in": "query", "required": true, "schema": { "type": "string" } }, { "name": "k", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 50 } }],
            "responses": { "200": ok("Products with scores and the share of the question they match.", json!({ "type": "object" })) } } }
    })
}

pub fn openapi_document() -> Value {
    let mut doc = openapi_core();
    for more in [pricing_paths(), assistant_paths()] {
        if let (Some(paths), Value::Object(more)) = (doc["paths"].as_object_mut(), more) {
            paths.extend(more);
        }
    }
    doc
}

fn openapi_core() -> Value {
    let subject_id = json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" }, "description": "The store's `userId` (or `anonymousId`) of the person." });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Candor API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Consent-first marketing AI for online retailers. Every read of a person's data names a purpose; the policy decides, and only the categories that purpose may use come back.",
            "license": { "name": "Apache-2.0" }
        },
        "components": {
            "securitySchemes": {
                "basic": { "type": "http", "scheme": "basic", "description": "The API key as user name, empty password (what Segment clients send)." },
                "bearer": { "type": "http", "scheme": "bearer" }
            },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                    "code": { "type": "string", "description": "Stable, machine-readable code." },
                    "message": { "type": "string" },
                    "reasons": { "type": "array", "items": { "type": "object" } } } } } },
                "SegmentMessage": { "type": "object", "properties": {
                    "type": { "type": "string", "enum": ["identify", "track", "page"], "description": "Required inside a batch." },
                    "messageId": { "type": "string", "maxLength": 256, "description": "Deduplication key." },
                    "userId": { "type": ["string", "number"] },
                    "anonymousId": { "type": ["string", "number"] },
                    "event": { "type": "string", "description": "Track calls: the event name, e.g. `Product Viewed`." },
                    "name": { "type": "string", "description": "Page calls: the page name." },
                    "properties": { "type": "object" },
                    "traits": { "type": "object" },
                    "context": { "type": "object", "description": "`context.consent.categoryPreferences` carries consent (Segment consent spec)." },
                    "timestamp": { "type": "string", "format": "date-time" } } },
                "EventResult": { "type": "object", "properties": {
                    "index": { "type": "integer" },
                    "messageId": { "type": "string" },
                    "status": { "type": "string", "enum": ["accepted", "duplicate", "dropped", "rejected"] },
                    "reason": { "type": "string" },
                    "message": { "type": "string" },
                    "droppedFields": { "type": "array", "items": { "type": "string" } } } },
                "ConsentInput": { "type": "object", "required": ["state"], "additionalProperties": false, "properties": {
                    "state": { "type": "string", "enum": ["granted", "withdrawn"] },
                    "notice_version": { "type": "string" },
                    "notice_hash": { "type": "string", "pattern": "^[0-9a-fA-F]{64}$" },
                    "source": { "type": "string", "enum": ["banner", "api", "import"] },
                    "jurisdiction": { "type": "string" } } },
                "ConsentView": { "type": "object", "properties": {
                    "subject": { "type": "string" },
                    "jurisdiction": { "type": "string" },
                    "purposes": { "type": "array", "items": { "type": "object", "properties": {
                        "purpose": { "type": "string" }, "basis": { "type": "string" },
                        "consent": { "type": ["string", "null"] }, "allowed": { "type": "boolean" }, "reason": { "type": "string" } } } },
                    "history": { "type": "array", "items": { "type": "object" } } } }
            }
        },
        "paths": {
            "/v1/identify": { "post": ingest_op("identify", "Identify a person and record traits") },
            "/v1/track": { "post": ingest_op("track", "Record an action (Ecommerce v2 names recognized)") },
            "/v1/page": { "post": ingest_op("page", "Record a page view") },
            "/v1/batch": { "post": {
                "tags": ["ingestion"],
                "summary": "Send up to 2,500 messages at once",
                "description": "Each message is judged on its own and reported per event; everything stored is written in one transaction before the answer.",
                "security": [{ "basic": [] }, { "bearer": [] }],
                "requestBody": json_body(json!({ "type": "object", "required": ["batch"], "properties": {
                    "batch": { "type": "array", "items": { "$ref": "#/components/schemas/SegmentMessage" } },
                    "context": { "type": "object" } } })),
                "responses": {
                    "200": ok("Counts and one result per message.", json!({ "type": "object", "properties": {
                        "success": { "type": "boolean" }, "accepted": { "type": "integer" }, "duplicate": { "type": "integer" },
                        "dropped": { "type": "integer" }, "rejected": { "type": "integer" },
                        "results": { "type": "array", "items": { "$ref": "#/components/schemas/EventResult" } } } })),
                    "400": error_response("Not JSON, or no `batch` array; nothing was stored."),
                    "401": error_response("Missing or invalid API key."),
                    "413": error_response("Body over 512 KiB or more than 2,500 messages.")
                } } },
            "/v1/subjects/{id}/consents": { "get": {
                "tags": ["consent"], "summary": "Current consent per purpose, the policy's decision, and the full history",
                "security": [{ "bearer": [] }], "parameters": [subject_id],
                "responses": { "200": ok("Consent state.", json!({ "$ref": "#/components/schemas/ConsentView" })),
                    "401": error_response("Missing or invalid API key."), "403": error_response("Needs a server or admin key."),
                    "404": error_response("Unknown subject.") } } },
            "/v1/subjects/{id}/consents/{purpose}": { "put": {
                "tags": ["consent"], "summary": "Grant or withdraw consent for one purpose (append-only ledger)",
                "security": [{ "bearer": [] }],
                "parameters": [subject_id, { "name": "purpose", "in": "path", "required": true, "schema": { "type": "string" } }],
                "requestBody": json_body(json!({ "$ref": "#/components/schemas/ConsentInput" })),
                "responses": { "200": ok("The new consent state.", json!({ "$ref": "#/components/schemas/ConsentView" })),
                    "400": error_response("Unknown purpose or jurisdiction, bad state, source or notice hash."),
                    "401": error_response("Missing or invalid API key."), "403": error_response("Needs a server or admin key.") } } },
            "/v1/subjects/{id}/data": { "get": {
                "tags": ["access"], "summary": "What one purpose may read about a person, and why",
                "description": "Purpose-bound read: the policy decides from the consent ledger; only the categories of that purpose are returned. Opening encrypted personal data is written to the audit log.",
                "security": [{ "bearer": [] }],
                "parameters": [subject_id,
                    { "name": "purpose", "in": "query", "required": true, "schema": { "type": "string" } },
                    { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 1000 } }],
                "responses": { "200": ok("Profile fields and events in the allowed categories.", json!({ "type": "object" })),
                    "400": error_response("Unknown purpose."), "403": error_response("The purpose is denied for this person (reasons attached) or the key's scope is too low."),
                    "404": error_response("Unknown subject.") } } },
            "/v1/subjects/{id}/decisions": { "get": {
                "tags": ["scoring"], "summary": "Automated decisions about a person, with their explanations",
                "description": "Newest first. Outcomes are stored encrypted with the person's data key; reading them is written to the audit log. After erasure the outcome is `null`.",
                "security": [{ "bearer": [] }],
                "parameters": [subject_id, { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 1000 } }],
                "responses": { "200": ok("Decisions.", json!({ "type": "object", "properties": { "subject": { "type": "string" }, "decisions": { "type": "array", "items": { "type": "object" } } } })),
                    "403": error_response("Needs a server or admin key."), "404": error_response("Unknown subject.") } } },
            "/v1/subjects/{id}/decisions/{decision}": { "get": {
                "tags": ["rights"], "summary": "One decision explained to the person: outcome, plain-language why, contest status",
                "security": [{ "bearer": [] }],
                "parameters": [subject_id, { "name": "decision", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "200": ok("The decision, `why`, `contest`, `how_to_contest`.", json!({ "type": "object" })),
                    "403": error_response("Needs a server or admin key."), "404": error_response("Unknown subject or decision.") } } },
            "/v1/subjects/{id}/decisions/{decision}/contest": { "post": {
                "tags": ["rights"], "summary": "Contest a decision (GDPR Art. 22(3)): the person's view goes to a human review queue",
                "security": [{ "bearer": [] }],
                "parameters": [subject_id, { "name": "decision", "in": "path", "required": true, "schema": { "type": "string" } }],
                "requestBody": json_body(json!({ "type": "object", "required": ["statement"], "additionalProperties": false, "properties": { "statement": { "type": "string", "maxLength": 5000 } } })),
                "responses": { "201": ok("The contest, due for review within 7 days.", json!({ "type": "object" })),
                    "400": error_response("Empty or too long statement."), "404": error_response("No such decision of this person."),
                    "409": error_response("Already under review, or the person's data was erased.") } } },
            "/v1/subjects/{id}/export": { "get": {
                "tags": ["rights"], "summary": "Everything held about the person (access and portability), decrypted, streamed",
                "description": "One JSON document with a section per table holding personal data; `?table=events` returns that table as CSV. The read is written to the audit log.",
                "security": [{ "bearer": [] }],
                "parameters": [subject_id, { "name": "table", "in": "query", "required": false, "schema": { "type": "string" } }],
                "responses": { "200": { "description": "application/json (whole export) or text/csv (one table)" },
                    "400": error_response("Unknown table."), "403": error_response("Needs a server or admin key."), "404": error_response("Unknown subject.") } } },
            "/v1/subjects/{id}/recommendations": { "get": {
                "tags": ["recommendations"], "summary": "Top-k products for a person, each with its reason; unpersonalized (same shape, marked) without personalization consent",
                "description": "With a `personalization` grant and a purchase history: ALS, each item explained by the purchase that contributes most (`because you bought …`), stored as a decision. Otherwise trending or bestselling items (`personalized: false`, `basis` says why). `context_item` asks for items bought with that item instead.",
                "security": [{ "bearer": [] }],
                "parameters": [subject_id, { "name": "k", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 100 } },
                    { "name": "context_item", "in": "query", "required": false, "schema": { "type": "string" } }],
                "responses": { "200": ok("The list.", json!({ "type": "object", "properties": { "personalized": { "type": "boolean" }, "model": { "type": "string" }, "basis": { "type": "string" }, "items": { "type": "array", "items": { "type": "object" } } } })),
                    "400": error_response("k out of range."), "404": error_response("Unknown context item."), "409": error_response("No recommendation model trained yet.") } } },
            "/v1/items/{id}/similar": { "get": {
                "tags": ["recommendations"], "summary": "Items often bought with this one (item-to-item), for product pages",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }, { "name": "k", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 100 } }],
                "responses": { "200": ok("The list.", json!({ "type": "object" })), "404": error_response("Unknown item."), "409": error_response("No recommendation model trained yet.") } } },
            "/v1/items/{id}/stock": { "put": {
                "tags": ["recommendations"], "summary": "Mark an item in or out of stock: out-of-stock items are never recommended",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "requestBody": json_body(json!({ "type": "object", "required": ["inStock"], "additionalProperties": false, "properties": { "inStock": { "type": "boolean" } } })),
                "responses": { "204": { "description": "Recorded." }, "400": error_response("Bad body or item id."), "403": error_response("Needs a server or admin key.") } } },
            "/v1/recs/exposure": { "get": {
                "tags": ["recommendations"], "summary": "Exposure audit of the personalized lists served in a period: Gini, catalog coverage, the popular head's share of exposure against its share of demand, categories; beside the unpersonalized list",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "from", "in": "query", "required": true, "schema": { "type": "string", "format": "date-time" } },
                    { "name": "to", "in": "query", "required": false, "schema": { "type": "string", "format": "date-time" } },
                    { "name": "format", "in": "query", "required": false, "schema": { "type": "string", "enum": ["json", "html"] } }],
                "responses": { "200": ok("The audit (JSON, or an HTML page with charts).", json!({ "type": "object" })),
                    "400": error_response("Bad time, period or format."), "403": error_response("Needs an admin key."), "409": error_response("No recommendation model trained yet.") } } },
            "/v1/journeys": { "get": {
                "tags": ["journeys"], "summary": "Each configured journey with its measurement: entered, holdout, sent, delivered, opened (only where tracking was allowed), clicked, converted, unsubscribed, complaints, skips by reason, uplift against the holdout; overall and by segment (new, returning, loyal)",
                "security": [{ "bearer": [] }],
                "responses": { "200": ok("The journeys.", json!({ "type": "object" })), "403": error_response("Needs a server or admin key.") } } },
            "/v1/emails/events": { "post": {
                "tags": ["journeys"], "summary": "Record bounces, complaints, unsubscribes and clicks by Message-ID (one event or an array of up to 1000). A complaint or unsubscribe withdraws marketing_email consent",
                "security": [{ "bearer": [] }],
                "requestBody": json_body(json!({ "type": "object", "required": ["type", "messageId"], "properties": { "type": { "type": "string", "enum": ["bounce", "complaint", "unsubscribe", "click"] }, "messageId": { "type": "string" } } })),
                "responses": { "200": ok("Recorded.", json!({ "type": "object" })), "400": error_response("Bad event; nothing recorded."), "403": error_response("Needs a server or admin key."), "404": error_response("No email with that Message-ID.") } } },
            "/u/{token}": {
                "post": { "tags": ["journeys"], "summary": "One-click unsubscribe (RFC 8058 List-Unsubscribe-Post): no key, no cookie; withdraws marketing_email consent at once and ends pending journey steps",
                    "parameters": [{ "name": "token", "in": "path", "required": true, "schema": { "type": "string" } }],
                    "responses": { "200": { "description": "Unsubscribed (an HTML confirmation)." }, "404": error_response("Unknown token.") } },
                "get": { "tags": ["journeys"], "summary": "The page of the visible unsubscribe link: a button that POSTs (a GET never unsubscribes)",
                    "parameters": [{ "name": "token", "in": "path", "required": true, "schema": { "type": "string" } }],
                    "responses": { "200": { "description": "An HTML page." }, "404": error_response("Unknown token.") } } },
            "/e/{token}/why": { "get": {
                "tags": ["journeys"], "summary": "Why did I get this email? The decision recorded when it was sent: trigger, consent checked at send time, frequency, whether a model chose content",
                "parameters": [{ "name": "token", "in": "path", "required": true, "schema": { "type": "string" } },
                    { "name": "format", "in": "query", "required": false, "schema": { "type": "string", "enum": ["html", "json"] } }],
                "responses": { "200": { "description": "An HTML page, or JSON." }, "400": error_response("Bad format."), "404": error_response("Unknown token.") } } },
            "/e/{token}/open": { "get": {
                "tags": ["journeys"], "summary": "Open pixel; recorded only for people who allow analytics",
                "parameters": [{ "name": "token", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "200": { "description": "A 1×1 GIF." }, "404": error_response("Unknown token.") } } },
            "/v1/subjects/{id}": { "delete": {
                "tags": ["rights"], "summary": "Erase the person: every row, their data key, a suppression entry; returns the receipt",
                "security": [{ "bearer": [] }],
                "parameters": [subject_id],
                "responses": { "200": ok("The erasure receipt and its SHA-256.", json!({ "type": "object" })),
                    "403": error_response("Needs a server or admin key."), "404": error_response("Unknown subject.") } } },
            "/v1/requests": {
                "post": { "tags": ["rights"], "summary": "Record a data-subject request; returns it with its deadlines and the one-time verification token",
                    "security": [{ "bearer": [] }],
                    "requestBody": json_body(json!({ "type": "object", "required": ["userId", "kind"], "additionalProperties": false, "properties": {
                        "userId": { "type": "string" }, "kind": { "type": "string", "enum": ["access", "portability", "rectification", "erasure", "restriction", "objection_marketing", "objection_profiling", "do_not_sell", "limit_sensitive"] },
                        "regime": { "type": "string", "enum": ["gdpr", "ccpa"] }, "details": { "type": "object" } } })),
                    "responses": { "201": ok("The request and `verification_token` (deliver it to the person's verified contact).", json!({ "type": "object" })),
                        "400": error_response("Unknown kind or regime, missing details."), "404": error_response("Unknown subject.") } },
                "get": { "tags": ["rights"], "summary": "Requests by due date; `?open=true`, `?overdue=true`", "security": [{ "bearer": [] }],
                    "parameters": [{ "name": "open", "in": "query", "required": false, "schema": { "type": "boolean" } }, { "name": "overdue", "in": "query", "required": false, "schema": { "type": "boolean" } }],
                    "responses": { "200": ok("Requests.", json!({ "type": "object" })), "403": error_response("Needs an admin key.") } } },
            "/v1/requests/{id}": { "get": { "tags": ["rights"], "summary": "One request with its status and deadlines", "security": [{ "bearer": [] }],
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "200": ok("The request.", json!({ "type": "object" })), "404": error_response("No such request.") } } },
            "/v1/requests/{id}/{action}": { "post": { "tags": ["rights"], "summary": "verify (token or staffNote), acknowledge, extend (notice), reject (reason), process",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } },
                    { "name": "action", "in": "path", "required": true, "schema": { "type": "string", "enum": ["verify", "acknowledge", "extend", "reject", "process"] } }],
                "requestBody": json_body(json!({ "type": "object", "additionalProperties": false, "properties": {
                    "token": { "type": "string" }, "staffNote": { "type": "string" }, "notice": { "type": "string" }, "reason": { "type": "string" } } })),
                "responses": { "200": ok("The request after the step.", json!({ "type": "object" })), "400": error_response("Unknown action or missing text."),
                    "403": error_response("Wrong or expired token; or the key's scope is too low."), "404": error_response("No such request."),
                    "409": error_response("Not allowed from the request's status.") } } },
            "/v1/contests": { "get": { "tags": ["rights"], "summary": "The review queue of contested decisions (oldest due first)", "security": [{ "bearer": [] }],
                "parameters": [{ "name": "status", "in": "query", "required": false, "schema": { "type": "string", "enum": ["open", "upheld", "overridden"] } }],
                "responses": { "200": ok("Contests.", json!({ "type": "object" })), "403": error_response("Needs an admin (reviewer) key.") } } },
            "/v1/contests/{id}/review": { "post": { "tags": ["rights"], "summary": "Uphold or override a contested decision, with a note for the person (and a corrected label)",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "requestBody": json_body(json!({ "type": "object", "required": ["outcome", "note"], "additionalProperties": false, "properties": {
                    "outcome": { "type": "string", "enum": ["uphold", "override"] }, "note": { "type": "string", "maxLength": 2000 }, "label": { "type": "integer", "enum": [0, 1] } } })),
                "responses": { "200": ok("The resolved contest.", json!({ "type": "object" })), "400": error_response("Bad outcome, note or label."),
                    "403": error_response("Needs an admin (reviewer) key."), "404": error_response("No such contest."), "409": error_response("Already resolved.") } } },
            "/v1/scores": { "post": {
                "tags": ["scoring"], "summary": "Score one person or up to 1,000: probability, tier, reasons",
                "description": "Each person needs a `profiling` grant; others come back `not_scored` with the denial code. Features are computed from the events profiling may read; `attributes` fill the model's other columns (CRM fields). Each score is stored as a decision.",
                "security": [{ "bearer": [] }],
                "requestBody": json_body(json!({ "type": "object", "additionalProperties": false, "properties": {
                    "userId": { "type": "string" }, "attributes": { "type": "object" },
                    "subjects": { "type": "array", "maxItems": 1000, "items": { "type": "object", "required": ["userId"], "properties": { "userId": { "type": "string" }, "attributes": { "type": "object" } } } },
                    "modelVersion": { "type": "integer", "description": "An approved or active version; default: the active lead_score model." } } })),
                "responses": { "200": ok("One result per person.", json!({ "type": "object", "properties": { "results": { "type": "array", "items": { "type": "object", "properties": {
                        "userId": { "type": "string" }, "status": { "type": "string", "enum": ["scored", "not_scored"] },
                        "probability": { "type": "number", "minimum": 0, "maximum": 1 }, "tier": { "type": "string", "enum": ["A", "B", "C", "D"] },
                        "horizon": { "type": "string" }, "reasonsUp": { "type": "array", "items": { "type": "object" } }, "reasonsDown": { "type": "array", "items": { "type": "object" } },
                        "modelVersion": { "type": "integer" }, "decisionId": { "type": "string" }, "reason": { "type": "string" }, "message": { "type": "string" } } } } } })),
                    "400": error_response("Bad body, batch size or attribute."), "403": error_response("Needs a server or admin key."),
                    "409": error_response("No active model, or the named model is not approved.") } } },
            "/v1/models": { "get": { "tags": ["models"], "summary": "Model versions with their cards", "security": [{ "bearer": [] }],
                "responses": { "200": ok("Models.", json!({ "type": "object" })), "403": error_response("Needs a server or admin key.") } } },
            "/v1/models/{version}": { "get": { "tags": ["models"], "summary": "One model: card (data, features, parameters, metrics) and lifecycle", "security": [{ "bearer": [] }],
                "parameters": [{ "name": "version", "in": "path", "required": true, "schema": { "type": "integer" } }],
                "responses": { "200": ok("The model.", json!({ "type": "object" })), "404": error_response("No such model.") } } },
            "/v1/models/{version}/card": { "get": { "tags": ["models"], "summary": "The model card as a self-contained HTML page with charts", "security": [{ "bearer": [] }],
                "parameters": [{ "name": "version", "in": "path", "required": true, "schema": { "type": "integer" } }],
                "responses": { "200": { "description": "HTML" }, "404": error_response("No such model.") } } },
            "/v1/models/{version}/audits": { "get": { "tags": ["fairness"], "summary": "The model's fairness audits (validation and monitoring), newest first, with their full reports", "security": [{ "bearer": [] }],
                "parameters": [{ "name": "version", "in": "path", "required": true, "schema": { "type": "integer" } },
                    { "name": "kind", "in": "query", "required": false, "schema": { "type": "string", "enum": ["validation", "monitoring"] } },
                    { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 500 } }],
                "responses": { "200": ok("Audits.", json!({ "type": "object", "properties": { "audits": { "type": "array", "items": { "type": "object" } } } })),
                    "400": error_response("Unknown kind."), "404": error_response("No such model.") } } },
            "/v1/models/{version}/audits/{id}/report": { "get": { "tags": ["fairness"], "summary": "One audit as a self-contained HTML report with charts", "security": [{ "bearer": [] }],
                "parameters": [{ "name": "version", "in": "path", "required": true, "schema": { "type": "integer" } }, { "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
                "responses": { "200": { "description": "HTML" }, "404": error_response("No such model or audit.") } } },
            "/v1/models/{version}/{action}": { "post": { "tags": ["models"], "summary": "approve, activate, retire a model, or override its failed fairness audit, with a reason (audited)", "security": [{ "bearer": [] }],
                "description": "Approving and activating need the model's latest fairness audit to have passed or been overridden (409 `fairness_gate`). `override` records an admin's override of a failed audit; it is shown on the model card.",
                "parameters": [{ "name": "version", "in": "path", "required": true, "schema": { "type": "integer" } },
                    { "name": "action", "in": "path", "required": true, "schema": { "type": "string", "enum": ["approve", "activate", "retire", "override"] } }],
                "requestBody": json_body(json!({ "type": "object", "required": ["reason"], "properties": { "reason": { "type": "string", "maxLength": 2000 } } })),
                "responses": { "200": ok("The model after the step.", json!({ "type": "object" })), "400": error_response("Missing reason or unknown action."),
                    "403": error_response("Needs an admin key."), "404": error_response("No such model."), "409": error_response("Not allowed from the model's status, refused by the fairness gate, or nothing to override.") } } },
            "/v1/fairness/alerts": { "get": { "tags": ["fairness"], "summary": "Alerts raised when monitoring finds a breached gate, newest first", "security": [{ "bearer": [] }],
                "parameters": [{ "name": "before", "in": "query", "required": false, "schema": { "type": "integer" } }, { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 500 } }],
                "responses": { "200": ok("Alerts.", json!({ "type": "object", "properties": { "alerts": { "type": "array", "items": { "type": "object" } } } })), "403": error_response("Needs a server or admin key.") } } },
            "/v1/fairness/monitor": { "post": { "tags": ["fairness"], "summary": "Audit live decisions of a period whose outcomes are known; breached gates raise alerts", "security": [{ "bearer": [] }],
                "requestBody": json_body(json!({ "type": "object", "required": ["from"], "additionalProperties": false, "properties": {
                    "modelVersion": { "type": "integer" }, "from": { "type": "string", "format": "date-time" }, "to": { "type": "string", "format": "date-time" },
                    "outcomeEvent": { "type": "string", "default": "Order Completed" }, "withinDays": { "type": "integer", "default": 30 }, "threshold": { "type": "number", "default": 0.5 } } })),
                "responses": { "200": ok("The recorded audit.", json!({ "type": "object" })), "400": error_response("Bad body or period."), "403": error_response("Needs an admin key."),
                    "409": error_response("No known outcomes yet, no protected data, or no active model.") } } },
            "/v1/keys": {
                "post": { "tags": ["admin"], "summary": "Create an API key (shown once)", "security": [{ "bearer": [] }],
                    "requestBody": json_body(json!({ "type": "object", "required": ["scope"], "properties": { "scope": { "type": "string", "enum": ["write", "server", "admin"] }, "label": { "type": "string" } } })),
                    "responses": { "201": ok("The new key.", json!({ "type": "object", "properties": { "id": { "type": "string" }, "scope": { "type": "string" }, "key": { "type": "string" } } })),
                        "400": error_response("Bad scope."), "403": error_response("Needs an admin key.") } },
                "get": { "tags": ["admin"], "summary": "List the tenant's API keys (never the secrets)", "security": [{ "bearer": [] }],
                    "responses": { "200": ok("Keys.", json!({ "type": "object" })), "403": error_response("Needs an admin key.") } } },
            "/v1/keys/{id}": { "delete": { "tags": ["admin"], "summary": "Revoke an API key", "security": [{ "bearer": [] }],
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } }],
                "responses": { "204": { "description": "Revoked." }, "403": error_response("Needs an admin key."), "404": error_response("No such live key in this tenant.") } } },
            "/v1/policy": { "get": { "tags": ["admin"], "summary": "The policy in force: purposes, categories, retention", "security": [{ "bearer": [] }],
                "responses": { "200": ok("Policy summary with its SHA-256.", json!({ "type": "object" })), "403": error_response("Needs a server or admin key.") } } },
            "/v1/audit/verify": { "get": { "tags": ["admin"], "summary": "Verify the hash-chained audit log", "security": [{ "bearer": [] }],
                "responses": { "200": ok("`ok` and the verified chains, or the first broken entry.", json!({ "type": "object" })), "403": error_response("Needs an admin key.") } } },
            "/openapi.json": { "get": { "tags": ["meta"], "summary": "This document", "responses": { "200": { "description": "OpenAPI 3.1" } } } },
            "/docs": { "get": { "tags": ["meta"], "summary": "Self-hosted API reference page", "responses": { "200": { "description": "HTML" } } } },
            "/healthz": { "get": { "tags": ["meta"], "summary": "Liveness and database reachability", "responses": { "200": { "description": "ok" }, "503": { "description": "database unreachable" } } } },
            "/metrics": { "get": { "tags": ["meta"], "summary": "Prometheus metrics", "responses": { "200": { "description": "text exposition format" } } } }
        }
    })
}
