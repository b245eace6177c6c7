//! Command arguments from strings, bytes and numbers: `args!["SET", key, 5]`.

/// Anything that becomes one argument.
pub trait IntoArg {
    fn into_arg(self) -> Vec<u8>;
}

impl IntoArg for &str {
    fn into_arg(self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}
impl IntoArg for String {
    fn into_arg(self) -> Vec<u8> {
        self.into_bytes()
    }
}
impl IntoArg for &String {
    fn into_arg(self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}
impl IntoArg for Vec<u8> {
    fn into_arg(self) -> Vec<u8> {
        self
    }
}
impl IntoArg for &[u8] {
    fn into_arg(self) -> Vec<u8> {
        self.to_vec()
    }
}
macro_rules! int_arg {
    ($($t:ty),*) => {$(impl IntoArg for $t {
        fn into_arg(self) -> Vec<u8> {
            self.to_string().into_bytes()
        }
    })*};
}
int_arg!(i64, u64, usize, i32, u32);

/// `args!["SET", key, 5]`: the arguments of one command.
#[macro_export]
macro_rules! args {
    ($($a:expr),* $(,)?) => { vec![$($crate::generate::IntoArg::into_arg($a)),*] };
}
