package operator

import (
	"fmt"
	"os"
	"os/user"
	"strings"
)

// DefaultActor names who makes a re-drive when nobody is named: $USER, else
// the operating system's user name (or uid) at this host, so the audit trail
// in outbox_redrives always says something true, also in containers where
// USER is unset. Used by `outbox-relay retry` (-by) and by the console
// without basic auth.
func DefaultActor() string {
	if u := strings.TrimSpace(os.Getenv("USER")); u != "" {
		return u
	}
	name := fmt.Sprintf("uid:%d", os.Getuid())
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if host, err := os.Hostname(); err == nil && host != "" {
		name += "@" + host
	}
	return name
}
