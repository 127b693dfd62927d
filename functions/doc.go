// Package functions holds the Lambda functions' commands, one directory
// each (failover, submit, populate), wiring only; their logic is in
// internal/front. The tests here check template.yaml and lambda.mk,
// and run the real bootstrap binaries under the AWS Lambda Runtime
// Interface Emulator against real raftnode processes.
package functions
