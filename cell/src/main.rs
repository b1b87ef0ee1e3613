//! The executor, main process of every cell; see `codebeaker_cell::executor`.

fn main() {
    codebeaker_cell::executor::main()
}
