pub(crate) mod route_check;
