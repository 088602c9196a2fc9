// Package chaos is the fault-injection suite: it runs several real relay
// processes against one database and the local Paragon endpoint, kills them
// with SIGKILL, stops them with SIGTERM, cuts their database and Paragon
// connections through TCP proxies, has Paragon fail, stall and drop
// requests, and then checks with SQL and the endpoint's record that every
// lead was delivered, none was lost or went dead, and every duplicate is
// explained by an attempt whose outcome the relay never learned.
//
// `make test` runs a short version; `make chaos` the full one (see
// docs/RELIABILITY.md). It has only tests.
package chaos
