package sql

// Roles returns roles.sql: the script a DBA runs once per database (after
// `outbox-relay migrate up`, as the tables' owner or a superuser) to create
// the group roles outbox_app, outbox_relay, outbox_operator and
// outbox_operator_write and grant each the least it needs on the objects in
// current_schema(). It is plain SQL without psql meta-commands, so it runs
// as one simple-protocol Exec as well as with `psql -f`. The file's header
// documents every privilege and why.
func Roles() string { return Query("roles") }
