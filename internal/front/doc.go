// Package front holds the Lambda functions' logic, one package per
// function (failover, submit, populate); functions/<name>/main.go only
// wires them. The tests of this package feed every fixture in events/ to
// the handlers against live in-process node groups.
package front
