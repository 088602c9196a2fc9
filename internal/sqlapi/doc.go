// Package sqlapi holds the tests of the outbox's SQL API, the part of the
// relay that lives in the app's database (migrations 00008, 00009 and
// 00015):
// outbox_enqueue(), outbox_attach()/outbox_detach(), the Lead Updated and
// Lead Deleted triggers and the ordering keys they write. The functions
// themselves are SQL; README.md ("The SQL API") documents them.
package sqlapi
