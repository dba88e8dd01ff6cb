"""Admin routes, one module per area; ``newsletter.admin.ROUTERS`` lists their routers."""
