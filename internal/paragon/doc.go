// Package paragon talks to Paragon's App Event API: it signs Paragon User
// Tokens with the project's signing key and sends one App Event per call,
// classifying the answer as delivered, retryable or rejected.
//
// It owns the wire contract (docs/PARAGON.md, gathered from Paragon's
// public docs): the endpoint
// POST {base}/projects/{projectId}/sdk/events/trigger, the JSON body
// {"name": ..., "payload": ...}, the RS256 token with sub/iat/exp/aud, and the
// meaning of status codes. It knows nothing about Postgres or the outbox.
package paragon
