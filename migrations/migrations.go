// Package migrations embeds the goose SQL migrations that create the leads
// table, the outbox, its attempts and the trigger that writes one outbox row
// per lead in the lead's own transaction.
//
// The files are applied by `outbox-relay migrate up` (see internal/migrate);
// this package only carries them so the binary is self-contained.
package migrations

import "embed"

// FS holds every *.sql migration in this folder, named NNNNN_description.sql
// as goose expects.
//
//go:embed *.sql
var FS embed.FS
