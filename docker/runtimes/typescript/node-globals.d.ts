// The Node.js globals a job's TypeScript may use, declared loosely: Debian ships no @types/node.
declare var require: any;
declare var module: any;
declare var exports: any;
declare var process: any;
declare var Buffer: any;
declare var __dirname: string;
declare var __filename: string;
// Compiled with --lib es2020 (the DOM library takes most of tsc's start-up), so declare console.
declare var console: any;
