// The package version (tests/cli.test.ts checks that it equals package.json's).
/** The dic-sdk version. */
export const VERSION = "0.1.0";
