// The PostgreSQL user store lives here.
