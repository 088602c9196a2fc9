package operator_test

import (
	"testing"

	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }
