"""models/embedders"""
